//! devchain: a regtest chain that speaks the Esplora HTTP API, for tests and sandboxes.
