//! The `lsp-node` binary: parse arguments, set up logging, run until a signal.

fn main() {}
