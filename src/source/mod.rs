//! Where bytes come from and go to: files, stdin and stdout, and files
//! followed across rotation.

pub mod follow;
mod same_file;
mod stdio;
mod stop;

pub use same_file::same_file;
pub use stdio::{ChunkWriter, Input, describe, open_stdin, open_stdout};
pub use stop::StopSignal;
