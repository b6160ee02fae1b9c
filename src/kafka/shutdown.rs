//! The request to stop, shared by the signal handler and the pipeline.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::delivery::lock;

/// Set once SIGTERM or SIGINT arrives; carries the deadline by which
/// in-flight records must be delivered and offsets committed.
#[derive(Debug, Default)]
pub struct Shutdown {
    requested: AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

impl Shutdown {
    /// Returns a shutdown that was not requested.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Requests the pipeline to stop within `grace`. A second request
    /// keeps the first deadline.
    pub fn request(&self, grace: Duration) {
        let mut deadline = lock(&self.deadline);
        if deadline.is_none() {
            *deadline = Some(Instant::now() + grace);
        }
        self.requested.store(true, Ordering::Release);
    }

    /// Returns whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Returns the deadline of a requested stop.
    pub fn deadline(&self) -> Option<Instant> {
        *lock(&self.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_request_keeps_deadline() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_requested());
        shutdown.request(Duration::from_secs(5));
        let first = shutdown.deadline().unwrap();
        shutdown.request(Duration::from_secs(60));
        assert!(shutdown.is_requested());
        assert_eq!(shutdown.deadline(), Some(first));
    }
}
