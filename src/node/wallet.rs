//! The on-chain wallet (BDK): sync, addresses, sends, funding transactions, fee bumping inputs.
