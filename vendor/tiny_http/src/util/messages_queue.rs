use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

enum Control<T> {
    Elem(T),
    Unblock,
}

pub struct MessagesQueue<T>
where
    T: Send,
{
    queue: Mutex<VecDeque<Control<T>>>,
    condvar: Condvar,
}

impl<T> MessagesQueue<T>
where
    T: Send,
{
    pub fn with_capacity(capacity: usize) -> Arc<MessagesQueue<T>> {
        Arc::new(MessagesQueue {
            queue: Mutex::new(VecDeque::with_capacity(capacity)),
            condvar: Condvar::new(),
        })
    }

    /// Patched (fluxbase-exporter): the queue, whether or not a panic poisoned its lock (a
    /// push or pop leaves it whole, so it stays sound); upstream unwrapped every lock and wait.
    fn queue(&self) -> MutexGuard<'_, VecDeque<Control<T>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pushes an element to the queue.
    pub fn push(&self, value: T) {
        let mut queue = self.queue();
        queue.push_back(Control::Elem(value));
        self.condvar.notify_one();
    }

    /// Unblock one thread stuck in pop loop.
    pub fn unblock(&self) {
        let mut queue = self.queue();
        queue.push_back(Control::Unblock);
        self.condvar.notify_one();
    }

    /// Pops an element. Blocks until one is available.
    /// Returns None in case unblock() was issued.
    pub fn pop(&self) -> Option<T> {
        let mut queue = self.queue();

        loop {
            match queue.pop_front() {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }

            // Patched (fluxbase-exporter): poison-safe, as `queue`.
            queue = self
                .condvar
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Tries to pop an element without blocking.
    pub fn try_pop(&self) -> Option<T> {
        let mut queue = self.queue();
        match queue.pop_front() {
            Some(Control::Elem(value)) => Some(value),
            Some(Control::Unblock) | None => None,
        }
    }

    /// Tries to pop an element without blocking
    /// more than the specified timeout duration
    /// or unblock() was issued
    pub fn pop_timeout(&self, timeout: Duration) -> Option<T> {
        let mut queue = self.queue();
        let mut duration = timeout;
        loop {
            match queue.pop_front() {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }
            let now = Instant::now();
            // Patched (fluxbase-exporter): poison-safe, as `queue`.
            let (_queue, result) = self
                .condvar
                .wait_timeout(queue, timeout)
                .unwrap_or_else(PoisonError::into_inner);
            queue = _queue;
            let sleep_time = now.elapsed();
            duration = if duration > sleep_time {
                duration - sleep_time
            } else {
                Duration::from_millis(0)
            };
            if result.timed_out()
                || (duration.as_secs() == 0 && duration.subsec_nanos() < 1_000_000)
            {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MessagesQueue;
    use std::sync::Arc;
    use std::time::Duration;

    /// Patched (fluxbase-exporter): a thread that panics while holding the queue's lock
    /// leaves a queue that every other thread can still use.
    #[test]
    fn a_poisoned_queue_still_passes_messages() {
        let queue = MessagesQueue::with_capacity(4);
        queue.push(1);
        let holder = Arc::clone(&queue);
        let panicked = std::thread::spawn(move || {
            let _guard = holder.queue.lock();
            panic!("poisons the lock on purpose");
        })
        .join();
        assert!(panicked.is_err());
        assert!(queue.queue.is_poisoned());

        queue.push(2);
        assert_eq!(queue.try_pop(), Some(1));
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop_timeout(Duration::from_millis(10)), None);
        queue.unblock();
        assert_eq!(queue.pop(), None);
    }
}
