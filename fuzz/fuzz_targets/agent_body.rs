//! Request bodies of the agent's API (PIN operations, writes, two-step): JSON that is refused or read, never a
//! panic.
#![no_main]

#[path = "../targets/agent_body.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
