//! The corpus replay of the cargo fuzz targets: see `tests/corpus.rs`. (No library code: the bodies are in
//! `fuzz/targets/`, shared with the cargo fuzz targets of `fuzz/fuzz_targets/`.)
