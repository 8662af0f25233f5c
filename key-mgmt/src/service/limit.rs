//! Rate limits: token buckets, one per terminal and one for the whole replica. A refused request costs
//! nothing; the buckets live in memory (each replica limits what reaches it: with N replicas behind a
//! balancer, a terminal gets at most N times its rate — configure accordingly).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Which limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// The terminal's own.
    Terminal,
    /// The replica's.
    Global,
}

/// Most terminals remembered; beyond, the buckets of terminals idle longest are dropped.
const MAX_TERMINALS: usize = 100_000;

/// The buckets.
pub struct RateLimits {
    global: Mutex<Bucket>,
    global_rate: f64,
    global_burst: f64,
    terminals: Mutex<HashMap<String, Bucket>>,
}

impl RateLimits {
    /// A global bucket of `rate` per second with `burst`.
    pub fn new(rate: f64, burst: f64) -> RateLimits {
        let now = Instant::now();
        RateLimits {
            global: Mutex::new(Bucket { tokens: burst, last: now }),
            global_rate: rate,
            global_burst: burst,
            terminals: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `terminal` (its `rate`/`burst`) and one from the replica's bucket.
    pub fn check(&self, terminal: &str, rate: f64, burst: f64) -> Result<(), Limited> {
        let now = Instant::now();
        {
            let mut map = self.terminals.lock().map_err(|_| Limited::Global)?;
            if map.len() >= MAX_TERMINALS && !map.contains_key(terminal) {
                let horizon = now - std::time::Duration::from_secs(60);
                map.retain(|_, b| b.last > horizon);
            }
            let bucket = map.entry(terminal.to_string()).or_insert(Bucket { tokens: burst, last: now });
            if !bucket.take(now, rate, burst) {
                return Err(Limited::Terminal);
            }
        }
        let mut global = self.global.lock().map_err(|_| Limited::Global)?;
        if global.take(now, self.global_rate, self.global_burst) {
            Ok(())
        } else {
            Err(Limited::Global)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal() {
        let l = RateLimits::new(1000.0, 1000.0);
        let ok = (0..10).filter(|_| l.check("t", 0.001, 3.0).is_ok()).count();
        assert_eq!(ok, 3);
        assert_eq!(l.check("t", 0.001, 3.0), Err(Limited::Terminal));
        assert!(l.check("other", 0.001, 3.0).is_ok());
        let g = RateLimits::new(0.001, 2.0);
        assert!(g.check("a", 100.0, 100.0).is_ok() && g.check("b", 100.0, 100.0).is_ok());
        assert_eq!(g.check("c", 100.0, 100.0), Err(Limited::Global));
    }
}
