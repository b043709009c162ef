#![no_main]
//! Fuzzes moqt::fuzzing::fmp4_reader (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::fmp4_reader(data));
