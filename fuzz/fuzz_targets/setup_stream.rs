#![no_main]
//! Fuzzes moqt::fuzzing::setup_stream (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::setup_stream(data));
