#![no_main]
//! Fuzzes moqt::fuzzing::subscribe_stream (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::subscribe_stream(data));
