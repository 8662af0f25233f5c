//! card-core's social security application (`card_core::card`) against card-sim in process: national strings
//! byte-compared with `fixtures/national/`, APDU counts with and without READ RECORD "all", keys, the two-step
//! exchange, PINs, internal authentication, addresses, binaries, tearing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "app/common.rs"]
mod common;

#[path = "app/basic.rs"]
mod basic;
#[path = "app/items.rs"]
mod items;
#[path = "app/names.rs"]
mod names;
#[path = "app/pin.rs"]
mod pin;
