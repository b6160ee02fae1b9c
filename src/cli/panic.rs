//! The panic hook: one fixed line on stderr, never the panic's message.
//!
//! A panic message can quote the bytes being scanned (an `expect` on a
//! parsed slice, the `Debug` of a buffer), and those bytes can contain a
//! credential. The hook replaces Rust's default one, so neither the
//! message nor a backtrace (`RUST_BACKTRACE=1`) is printed. It exits the
//! process at once, also from a thread other than the main one, whose
//! panic would otherwise end only that thread and leave the mode running
//! without it.

use std::io::Write;
use std::panic::PanicHookInfo;
use std::sync::OnceLock;

/// Exit status after a panic: 101, as with Rust's default hook when the
/// main thread panics.
pub const EXIT_PANIC: u8 = 101;

/// Environment variable that makes the scanner panic at its first
/// finding, with the scanned bytes in the message. Test-only: the tests
/// of this hook set it to prove that no input bytes are printed.
pub const TEST_PANIC_VARIABLE: &str = "CFSCRUB_TEST_PANIC_ON_FINDING";

static TEST_PANIC: OnceLock<bool> = OnceLock::new();

/// Installs the hook and reads [`TEST_PANIC_VARIABLE`] once.
pub fn install() {
    let requested = std::env::var_os(TEST_PANIC_VARIABLE)
        .is_some_and(|value| value == "1");
    let _ = TEST_PANIC.set(requested);
    std::panic::set_hook(Box::new(report_and_exit));
}

/// Returns whether [`TEST_PANIC_VARIABLE`] was set to 1 at start-up.
pub fn test_panic_requested() -> bool {
    TEST_PANIC.get().copied().unwrap_or(false)
}

fn report_and_exit(info: &PanicHookInfo<'_>) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    let location = match info.location() {
        Some(at) => format!("{}:{}:{}", at.file(), at.line(), at.column()),
        None => "an unknown location".to_owned(),
    };
    // A failed write cannot be reported anywhere, and the exit status
    // still shows that cfscrub failed.
    let _ = writeln!(
        std::io::stderr(),
        "cfscrub: internal error: thread {name} panicked at {location}; \
         the panic message is not shown because it may quote input bytes"
    );
    std::process::exit(i32::from(EXIT_PANIC));
}
