//! Named crash points for the crash tests. Built with the `fault-points` feature (the test
//! suite turns it on; release builds never do), reaching the point named by the environment
//! variable `LSP_NODE_CRASH_AT` aborts the process on the spot: no destructor runs and nothing
//! more is written, as with SIGKILL between two lines. Without the feature every point compiles
//! to nothing.

/// The variable naming the point to crash at.
pub const CRASH_AT_VAR: &str = "LSP_NODE_CRASH_AT";

/// Aborts the process here if the crash tests asked for `name`.
#[inline]
pub fn crash_point(name: &'static str) {
    #[cfg(feature = "fault-points")]
    if std::env::var(CRASH_AT_VAR).is_ok_and(|at| at == name) {
        eprintln!("crash point {name} reached: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "fault-points"))]
    let _ = name;
}
