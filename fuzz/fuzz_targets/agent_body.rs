//! Request bodies of the agent's API (PIN operations, writes, two-step): JSON that is refused or read, never a
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use terminal_agent::service::api::{PinBody, Step2Body, WriteBody};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<PinBody>(data);
    let _ = serde_json::from_slice::<WriteBody>(data);
    let _ = serde_json::from_slice::<Step2Body>(data);
});
