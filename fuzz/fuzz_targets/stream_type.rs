#![no_main]
//! Fuzzes moqt::fuzzing::stream_type (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::stream_type(data));
