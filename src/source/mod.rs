//! Where bytes come from and go to: files, stdin and stdout, and files
//! followed across rotation.

pub mod follow;
mod stdio;
mod stop;

pub use stdio::{ChunkWriter, Input, describe, open_stdin, open_stdout};
pub use stop::StopSignal;
