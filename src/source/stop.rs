//! A stop requested by SIGTERM or SIGINT, for the stream filter, which runs
//! no async runtime. The signal handlers set a flag, which the read loop
//! checks between reads, and write a byte to a pipe, which wakes a read
//! that waits on an idle input.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::pipe::{PipeFlags, pipe_with};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::low_level::pipe;

/// The stop requests of the process, from SIGTERM and SIGINT.
pub struct StopSignal {
    terminate: Arc<AtomicBool>,
    interrupt: Arc<AtomicBool>,
    /// Read end of the pipe the handlers write to. It is never drained,
    /// because the first stop ends the read loop for good.
    wake: OwnedFd,
}

impl StopSignal {
    /// Installs the handlers of SIGTERM and SIGINT for the rest of the
    /// process's life. The first signal requests a stop. A second one,
    /// which an operator sends when the stop hangs (on a write to a reader
    /// that reads nothing, say), exits at once with `second_status`.
    ///
    /// # Errors
    ///
    /// Fails when the pipe cannot be created or a handler cannot be
    /// installed.
    pub fn install(second_status: i32) -> io::Result<StopSignal> {
        let (wake, wake_writer) = pipe_with(PipeFlags::CLOEXEC)?;
        let stop = StopSignal {
            terminate: Arc::new(AtomicBool::new(false)),
            interrupt: Arc::new(AtomicBool::new(false)),
            wake,
        };
        let requested = Arc::new(AtomicBool::new(false));
        for (signal, own) in
            [(SIGTERM, &stop.terminate), (SIGINT, &stop.interrupt)]
        {
            // Handlers run in the order they were installed, so the exit
            // reads the flag before this signal sets it.
            flag::register_conditional_shutdown(
                signal,
                second_status,
                requested.clone(),
            )?;
            flag::register(signal, requested.clone())?;
            flag::register(signal, own.clone())?;
            // The flags are set before the pipe is written, so a reader
            // woken by the pipe finds them set. The write end is made
            // non-blocking, so a handler never waits on a full pipe.
            pipe::register(signal, wake_writer.try_clone()?)?;
        }
        Ok(stop)
    }

    /// Returns whether a stop was requested. This is one atomic load, so
    /// the read loop checks it before every read.
    pub fn requested(&self) -> bool {
        self.terminate.load(Ordering::Relaxed)
            || self.interrupt.load(Ordering::Relaxed)
    }

    /// Returns the name of the signal that requested the stop, if one did.
    pub fn signal_name(&self) -> Option<&'static str> {
        if self.terminate.load(Ordering::Relaxed) {
            Some("SIGTERM")
        } else if self.interrupt.load(Ordering::Relaxed) {
            Some("SIGINT")
        } else {
            None
        }
    }

    /// Waits until `input` is readable (it has bytes, its writer closed
    /// it, or it failed) or a stop is requested. Returns whether the
    /// input is readable and no stop was requested. `before_wait` runs
    /// once, before the first wait, when the input is not readable at
    /// once.
    ///
    /// # Errors
    ///
    /// Fails when `poll` fails for a reason other than an interrupt.
    pub fn wait_readable(
        &self,
        input: impl AsFd,
        mut before_wait: impl FnMut(),
    ) -> io::Result<bool> {
        let no_wait = Timespec { tv_sec: 0, tv_nsec: 0 };
        let mut timeout = Some(&no_wait);
        loop {
            let mut fds = [
                PollFd::new(&input, PollFlags::IN),
                PollFd::new(&self.wake, PollFlags::IN),
            ];
            match poll(&mut fds, timeout) {
                Ok(0) if timeout.is_some() => {
                    before_wait();
                    timeout = None;
                }
                Ok(_) => {
                    if !fds[1].revents().is_empty() || self.requested() {
                        return Ok(false);
                    }
                    if !fds[0].revents().is_empty() {
                        return Ok(true);
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}
