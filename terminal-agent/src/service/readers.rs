//! The reader pool (in progress).
