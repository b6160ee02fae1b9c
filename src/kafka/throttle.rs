//! Rate limits for log lines that a failing broker can repeat many times
//! a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::delivery::lock;

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
        let mut last = lock(&self.last);
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
