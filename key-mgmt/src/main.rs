//! `keymgmt`: see `keymgmt --help`.

fn main() {}
