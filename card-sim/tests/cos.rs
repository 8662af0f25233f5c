//! card-sim behaviour, command by command, through APDUs only (one test binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "cos/host.rs"]
mod host;

#[path = "cos/auth.rs"]
mod auth;
#[path = "cos/files.rs"]
mod files;
#[path = "cos/images.rs"]
mod images;
#[path = "cos/lifecycle.rs"]
mod lifecycle;
#[path = "cos/pin.rs"]
mod pin;
#[path = "cos/robustness.rs"]
mod robustness;
#[path = "cos/transport.rs"]
mod transport;
