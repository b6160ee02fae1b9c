//! Rate limits for log lines that a failing broker or disk can repeat
//! many times a second.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Time between two log lines of one kind.
const INTERVAL: Duration = Duration::from_secs(10);

/// Allows one event per [`INTERVAL`].
#[derive(Debug, Default)]
pub struct Throttle {
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    /// Returns a throttle that allows the next event.
    pub fn new() -> Throttle {
        Throttle::default()
    }

    /// Returns whether an event may be logged now, and if so starts a new
    /// interval.
    pub fn allow(&self) -> bool {
        let mut last =
            self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_event_suppressed() {
        let throttle = Throttle::new();
        assert!(throttle.allow());
        assert!(!throttle.allow());
    }
}
