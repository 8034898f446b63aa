//! Node keys: the BIP39 seed file and everything derived from it.
