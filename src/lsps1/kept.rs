//! A value kept beside what it was computed from (the change counts of its sources), handed
//! out only while those are unchanged.

use std::sync::Mutex;

pub struct Kept<K, T> {
    kept: Mutex<Option<(K, T)>>,
}

impl<K, T> Default for Kept<K, T> {
    fn default() -> Self {
        Kept {
            kept: Mutex::new(None),
        }
    }
}

impl<K: PartialEq, T: Clone> Kept<K, T> {
    /// The value kept for `from`, if it was computed from exactly that.
    pub fn get(&self, from: &K) -> Option<T> {
        match &*self.lock() {
            Some((kept_from, value)) if kept_from == from => Some(value.clone()),
            _ => None,
        }
    }

    /// Keeps `value`, computed from `from`.
    pub fn put(&self, from: K, value: T) {
        *self.lock() = Some((from, value));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(K, T)>> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
