#![no_main]
//! Fuzzes moqt::fuzzing::datagram (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::datagram(data));
