//! Checkpoint target: the input is the contents of a follow checkpoint
//! file. Parsing must not panic, an error must be one line, and a
//! checkpoint that parses must equal the one rebuilt from its entries.

#![no_main]

use std::path::Path;

use cfscrub::source::follow::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("follow.checkpoint");
    match Checkpoint::parse(data, path) {
        Ok(checkpoint) => {
            let rebuilt = Checkpoint::new(checkpoint.files.clone());
            assert_eq!(rebuilt, checkpoint, "rebuilt checkpoint differs");
            for entry in &checkpoint.files {
                let _ = entry.id();
            }
        }
        Err(error) => {
            let message = error.to_string();
            let breaks = message.contains(['\n', '\r']);
            assert!(!breaks, "error of more than one line");
        }
    }
});
