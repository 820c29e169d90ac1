//! Published snapshots: a worker replaces the whole value; readers take the latest.

use std::sync::{Arc, PoisonError, RwLock};

/// The latest value a worker published.
///
/// A reader clones an `Arc` under the read side of a lock and then works on the snapshot with
/// no lock held; a publisher swaps the pointer under the write side. Neither side does any work
/// while holding the lock, so a reader waits at most for a pointer swap, never for the worker's
/// I/O. The lock also orders memory: everything the worker wrote into the snapshot before
/// publishing it is visible to any reader that receives it.
#[derive(Debug)]
pub struct Published<T> {
    latest: RwLock<Arc<T>>,
}

impl<T> Published<T> {
    pub fn new(initial: T) -> Self {
        Published {
            latest: RwLock::new(Arc::new(initial)),
        }
    }

    /// Replaces the snapshot readers see.
    pub fn publish(&self, value: T) {
        let value = Arc::new(value);
        // The old snapshot is dropped after the guard, outside the lock.
        let _previous = std::mem::replace(
            &mut *self.latest.write().unwrap_or_else(PoisonError::into_inner),
            value,
        );
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Arc<T> {
        Arc::clone(&self.latest.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<T: Default> Default for Published<T> {
    fn default() -> Self {
        Published::new(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_the_snapshot_they_took() {
        let published = Published::new(vec![1]);
        let before = published.latest();
        published.publish(vec![2, 3]);
        assert_eq!(*before, vec![1]);
        assert_eq!(*published.latest(), vec![2, 3]);
    }
}
