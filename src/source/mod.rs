//! Where bytes come from and go to: files, stdin and stdout, and files
//! followed across rotation.

pub mod follow;
mod stdio;

pub use stdio::{ChunkWriter, Input, open_stdin, open_stdout};
