//! Where bytes come from and go to: files, stdin and stdout.

mod stdio;

pub use stdio::{BatchWriter, ChunkWriter, Input, open_stdin, open_stdout};
