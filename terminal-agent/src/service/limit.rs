//! PIN attempts are rate-limited per reader: a page (or a script) cannot run through PIN guesses, nor burn the
//! card's try counter, faster than a person at the counter would.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sliding window of attempts per key (reader name).
pub struct RateLimit {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimit {
    /// At most `max` attempts per `window` per key.
    pub fn new(max: u32, window: Duration) -> Self {
        RateLimit { max, window, seen: Mutex::new(HashMap::new()) }
    }

    /// Counts an attempt; `Err(wait)` when the key is over its limit (the attempt is not counted).
    pub fn attempt(&self, key: &str) -> Result<(), Duration> {
        self.attempt_at(key, Instant::now())
    }

    fn attempt_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let q = seen.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            q.pop_front();
        }
        if q.len() >= self.max as usize {
            let oldest = q.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let l = RateLimit::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(l.attempt_at("r", t0).is_ok());
        assert!(l.attempt_at("r", t0 + Duration::from_secs(1)).is_ok());
        let wait = l.attempt_at("r", t0 + Duration::from_secs(2)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(58));
        assert!(l.attempt_at("other reader", t0 + Duration::from_secs(2)).is_ok());
        assert!(l.attempt_at("r", t0 + Duration::from_secs(60)).is_ok());
    }
}
