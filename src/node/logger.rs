//! Bridges LDK's `Logger` trait onto `tracing`, so LDK's lines land in the binary's log.
//!
//! LDK's Gossip and Trace levels map to `trace`, Debug to `debug`, and so on; the peer and
//! channel an LDK record is about become structured fields.

use lightning::util::logger::{Level, Logger, Record};

/// Forwards LDK log records to `tracing` under the `ldk` target.
#[derive(Debug, Default, Clone, Copy)]
pub struct LdkLogger;

impl Logger for LdkLogger {
    fn log(&self, record: Record) {
        let peer = record.peer_id.map(|p| p.to_string()).unwrap_or_default();
        let channel = record.channel_id.map(|c| c.to_string()).unwrap_or_default();
        let module = record.module_path;
        match record.level {
            Level::Gossip | Level::Trace => {
                tracing::trace!(target: "ldk", module, peer, channel, "{}", record.args)
            }
            Level::Debug => {
                tracing::debug!(target: "ldk", module, peer, channel, "{}", record.args)
            }
            Level::Info => tracing::info!(target: "ldk", module, peer, channel, "{}", record.args),
            Level::Warn => tracing::warn!(target: "ldk", module, peer, channel, "{}", record.args),
            Level::Error => {
                tracing::error!(target: "ldk", module, peer, channel, "{}", record.args)
            }
        }
    }
}
