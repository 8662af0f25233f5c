//! `cargo xtask bench`: performance shown side by side — the clerk's wait (reading the basic information: the
//! project, the vendors' record-by-record pattern, bare PC/SC), the agent's overhead, the desk's cards per hour
//! and key sets per second — on the same paced virtual card, written to `bench/results.md` and a plot.
//!
//! Deterministic counts (APDUs, bytes, modeled card time) are asserted in this crate's tests; wall times exist
//! only in the bench's output.

pub mod measure;
pub mod plot;
pub mod reads;
pub mod report;
