//! Named crash points for the crash tests. Built with the `fault-points` feature (the test
//! suite turns it on; release builds never do), reaching the point named by the environment
//! variable `LSP_NODE_CRASH_AT` aborts the process on the spot: no destructor runs and nothing
//! more is written, as with SIGKILL between two lines. `name#N` aborts the N-th time the point
//! is reached (the first N-1 pass). Without the feature every point compiles to nothing.

/// The variable naming the point to crash at.
pub const CRASH_AT_VAR: &str = "LSP_NODE_CRASH_AT";

/// Aborts the process here if the crash tests asked for `name`.
#[inline]
pub fn crash_point(name: &'static str) {
    #[cfg(feature = "fault-points")]
    armed::reach(name);
    #[cfg(not(feature = "fault-points"))]
    let _ = name;
}

#[cfg(feature = "fault-points")]
mod armed {
    use std::collections::HashMap;
    use std::sync::Mutex;

    static REACHED: Mutex<Option<HashMap<&'static str, u32>>> = Mutex::new(None);

    pub(super) fn reach(name: &'static str) {
        let Ok(at) = std::env::var(super::CRASH_AT_VAR) else {
            return;
        };
        let (point, nth) = match at.split_once('#') {
            Some((point, nth)) => (point.to_string(), nth.parse().unwrap_or(1)),
            None => (at, 1),
        };
        if point != name {
            return;
        }
        let mut reached = REACHED.lock().unwrap_or_else(|p| p.into_inner());
        let count = reached
            .get_or_insert_with(HashMap::new)
            .entry(name)
            .or_insert(0);
        *count += 1;
        if *count >= nth {
            eprintln!("crash point {name} reached ({count}): aborting");
            std::process::abort();
        }
    }
}
