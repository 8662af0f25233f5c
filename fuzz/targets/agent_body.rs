//! Request bodies of the agent's API (PIN operations, writes, two-step): JSON that is refused or read, never a
//! panic.
//!
//! The body of cargo fuzz target `agent_body` (`fuzz/fuzz_targets/agent_body.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/agent_body/`.

use terminal_agent::service::api::{PinBody, Step2Body, WriteBody};

/// One input.
pub fn run(data: &[u8]) {
    let _ = serde_json::from_slice::<PinBody>(data);
    let _ = serde_json::from_slice::<WriteBody>(data);
    let _ = serde_json::from_slice::<Step2Body>(data);
}
