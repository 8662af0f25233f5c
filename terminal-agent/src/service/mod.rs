//! `terminal-agent serve`: the local HTTP/WebSocket card service.
//!
//! - [`readers`]: the reader pool — one worker thread per reader, requests queued with a bounded wait,
//!   the two-step exchanges held on the worker between their steps;
//! - [`events`]: reader and card events (PC/SC status change with PnP notification) for subscribers.

pub mod events;
pub mod readers;
