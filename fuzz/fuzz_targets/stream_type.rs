#![no_main]
//! Fuzzes moqt::wire::fuzzing::stream_type (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::wire::fuzzing::stream_type(data));
