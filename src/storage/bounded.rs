//! Blocking calls with a deadline: a helper thread runs them, the caller waits at most a timeout.
//!
//! A filesystem call can block forever (an NFS mount with `hard` that stopped answering), and
//! no deadline can interrupt it. The call therefore runs on a helper thread; the caller gives up
//! on it after the timeout and carries on. While a call is still stuck, the helper stays busy and
//! further calls are refused at once, so stuck calls never pile up threads: at most one is ever
//! waiting, and the helper becomes usable again the moment it returns.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, after, bounded, select};

type Job = Box<dyn FnOnce() + Send>;

/// Why a bounded call produced no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfinished {
    /// The call did not return within the timeout (it may still be running).
    TimedOut,
    /// An earlier call is still running (for this long); this one was not started.
    StillBusy(Duration),
    /// The helper thread is gone (it panicked).
    Gone,
}

/// One helper thread for blocking calls.
pub struct Bounded {
    jobs: Option<Sender<Job>>,
    /// Set from dispatch until the call returns. `Release` when the helper clears it after the
    /// call and `Acquire` when the caller reads it: a caller that sees the helper free also sees
    /// everything the finished call did.
    busy: Arc<AtomicBool>,
    /// When the current call was dispatched (only the caller's thread touches it).
    dispatched: std::cell::Cell<Option<Instant>>,
    thread: Option<JoinHandle<()>>,
    done: Receiver<()>,
    name: &'static str,
}

impl Bounded {
    /// Starts the helper thread, named `name`.
    pub fn new(name: &'static str) -> io::Result<Self> {
        let (jobs, receiver) = bounded::<Job>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let helper_busy = Arc::clone(&busy);
        let (done_sender, done) = bounded::<()>(0);
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _done = done_sender;
                for job in receiver {
                    // A panicking call loses its own result (its caller sees `Gone`), not the
                    // helper: later calls still run and report their own outcome.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    helper_busy.store(false, Ordering::Release);
                }
            })?;
        Ok(Bounded {
            jobs: Some(jobs),
            busy,
            dispatched: std::cell::Cell::new(None),
            thread: Some(thread),
            done,
            name,
        })
    }

    /// Runs `call` on the helper and waits at most `timeout` for its result.
    pub fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Unfinished> {
        let Some(jobs) = &self.jobs else {
            return Err(Unfinished::Gone);
        };
        if self.busy.swap(true, Ordering::Acquire) {
            let waiting = self
                .dispatched
                .get()
                .map(|at| at.elapsed())
                .unwrap_or_default();
            return Err(Unfinished::StillBusy(waiting));
        }
        self.dispatched.set(Some(Instant::now()));
        let (result_sender, result) = bounded::<T>(1);
        let job: Job = Box::new(move || {
            // The caller may have given up; then nobody reads the result.
            let _ = result_sender.send(call());
        });
        if jobs.try_send(job).is_err() {
            self.busy.store(false, Ordering::Release);
            return Err(Unfinished::Gone);
        }
        match result.recv_timeout(timeout) {
            Ok(value) => Ok(value),
            Err(RecvTimeoutError::Timeout) => Err(Unfinished::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(Unfinished::Gone),
        }
    }

    /// Stops the helper: joins it if it finishes within `grace`, else leaves it behind (stuck in
    /// a call that will end with the process) and says so.
    pub fn shutdown(mut self, grace: Duration) {
        self.jobs.take();
        let deadline = Instant::now() + grace;
        select! {
            recv(self.done) -> _ => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            recv(after(deadline.saturating_duration_since(Instant::now()))) -> _ => {
                log::warn!(helper = self.name; "a blocking call is still stuck at shutdown; exiting without it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_what_the_call_returns() {
        let helper = Bounded::new("test-helper").unwrap();
        assert_eq!(helper.run(Duration::from_secs(5), || 40 + 2), Ok(42));
        assert_eq!(helper.run(Duration::from_secs(5), || "again"), Ok("again"));
        helper.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn a_stuck_call_times_out_and_blocks_no_one_then_the_helper_recovers() {
        let helper = Bounded::new("test-helper").unwrap();
        let (release, released) = bounded::<()>(0);
        let asked = Instant::now();
        let stuck = helper.run(Duration::from_millis(50), move || {
            let _ = released.recv();
        });
        assert_eq!(stuck, Err(Unfinished::TimedOut));
        assert!(asked.elapsed() < Duration::from_secs(5));
        // While it is stuck, further calls are refused at once.
        assert!(
            matches!(helper.run(Duration::from_secs(5), || 1), Err(Unfinished::StillBusy(waited)) if waited >= Duration::from_millis(50))
        );
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match helper.run(Duration::from_secs(5), || 1) {
                Ok(1) => break,
                Err(Unfinished::StillBusy(_)) if Instant::now() < deadline => thread::yield_now(),
                other => panic!("helper did not recover: {other:?}"),
            }
        }
        helper.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn shutdown_leaves_a_stuck_helper_behind() {
        let helper = Bounded::new("test-helper").unwrap();
        let _ = helper.run(Duration::from_millis(10), || {
            thread::sleep(Duration::from_secs(2))
        });
        let stopping = Instant::now();
        helper.shutdown(Duration::from_millis(50));
        assert!(stopping.elapsed() < Duration::from_secs(1));
    }
}
