//! Follow pattern target: the input is a path or glob as given to
//! `cfscrub follow`. Parsing must not panic, and an error must be one
//! line.

#![no_main]

use cfscrub::source::follow::watch::Pattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Pattern::parse(text) {
        Ok(pattern) => {
            assert_eq!(pattern.text(), text, "pattern text changed");
            let _ = pattern.watch_dir();
            let _ = pattern.is_glob();
        }
        Err(error) => {
            let message = error.to_string();
            let breaks = message.contains(['\n', '\r']);
            assert!(!breaks, "error of more than one line");
        }
    }
});
