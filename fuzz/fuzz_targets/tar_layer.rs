#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cnb_attest_fuzz::tar_layer(data));
