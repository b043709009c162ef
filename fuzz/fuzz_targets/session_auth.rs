#![no_main]
//! Fuzzes moqt::fuzzing::session_auth (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::session_auth(data));
