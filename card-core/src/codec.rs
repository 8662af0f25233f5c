//! placeholder until the module lands

/// placeholder
#[derive(Debug, thiserror::Error)]
pub enum CodecError {}
