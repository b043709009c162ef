#![no_main]
//! Fuzzes moqt::fuzzing::media_audio (see that function for the input layout).

libfuzzer_sys::fuzz_target!(|data: &[u8]| moqt::fuzzing::media_audio(data));
