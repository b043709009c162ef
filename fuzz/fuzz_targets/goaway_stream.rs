#![no_main]
//! Fuzzes moqt::fuzzing::goaway_stream (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::goaway_stream(data));
