//! Background workers: one thread each, paced by a timer, stopped by a shared shutdown signal,
//! and joined by their owner.
//!
//! A worker does all of its I/O on its own thread and publishes what it found (atomics,
//! families, snapshots) for the request handlers to read.

use std::io;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, bounded, select};

/// One kind of background work, run in rounds.
pub trait Worker: Send + 'static {
    /// The thread's name and the worker's name in logs.
    fn name(&self) -> &'static str;

    /// Does one round: measure, then publish. Each step bounds its own time; a failure becomes
    /// a published verdict, never a panic or an early return from the loop.
    fn run_once(&mut self, now: Instant);

    /// How long from the start of one round to the start of the next.
    fn interval(&self) -> Duration;

    /// Called once on the worker's thread after its last round, to stop what it owns.
    fn stop(&mut self) {}
}

/// The owner of every worker thread. Dropping the shutdown sender wakes all of them; `shutdown`
/// then joins each one.
pub struct Workers {
    shutdown_sender: Option<Sender<()>>,
    shutdown: Receiver<()>,
    threads: Vec<Running>,
}

struct Running {
    name: &'static str,
    thread: JoinHandle<()>,
    /// Disconnects when the thread ends (its sender is dropped with the thread's stack, also
    /// when it panics), so the owner can wait for it with a deadline.
    done: Receiver<()>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers::new()
    }
}

impl Workers {
    pub fn new() -> Self {
        // Nothing is ever sent: dropping the sender disconnects the channel, which every
        // receiver sees at once. That is the broadcast.
        let (sender, receiver) = bounded(0);
        Workers {
            shutdown_sender: Some(sender),
            shutdown: receiver,
            threads: Vec::new(),
        }
    }

    /// Starts `worker` on its own named thread.
    pub fn spawn(&mut self, worker: impl Worker) -> io::Result<()> {
        let name = worker.name();
        let shutdown = self.shutdown.clone();
        let (done_sender, done) = bounded::<()>(0);
        let thread = thread::Builder::new()
            .name(format!("worker-{name}"))
            .spawn(move || {
                let _done = done_sender;
                run(worker, &shutdown);
            })?;
        self.threads.push(Running { name, thread, done });
        Ok(())
    }

    /// A receiver that disconnects when shutdown starts: a long round (a storage scan) polls it
    /// to stop early.
    pub fn stop_signal(&self) -> Receiver<()> {
        self.shutdown.clone()
    }

    /// Signals every worker to stop and joins each once it has finished its current round.
    ///
    /// A round bounds its own steps, but a step may still be waiting out its timeout (a
    /// database that accepts and never answers): a worker not done within `grace` is left
    /// behind, with a warning, rather than holding the process past its stop deadline; it ends
    /// with the process.
    pub fn shutdown(mut self, grace: Duration) {
        self.shutdown_sender.take();
        let deadline = Instant::now() + grace;
        for running in self.threads.drain(..) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            select! {
                recv(running.done) -> _ => {
                    if running.thread.join().is_err() {
                        log::error!(worker = running.name; "worker thread panicked");
                    }
                }
                recv(after(remaining)) -> _ => {
                    log::warn!(
                        worker = running.name,
                        grace_ms = grace.as_millis() as u64;
                        "worker still busy at shutdown; exiting without waiting for it"
                    );
                }
            }
        }
    }
}

fn run(mut worker: impl Worker, shutdown: &Receiver<()>) {
    log::debug!(worker = worker.name(); "worker started");
    loop {
        let started = Instant::now();
        worker.run_once(started);
        let pause = worker.interval().saturating_sub(started.elapsed());
        select! {
            recv(shutdown) -> _ => break,
            recv(after(pause)) -> _ => {}
        }
    }
    worker.stop();
    log::debug!(worker = worker.name(); "worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Ticking {
        rounds: Arc<AtomicUsize>,
        interval: Duration,
    }

    impl Worker for Ticking {
        fn name(&self) -> &'static str {
            "ticking"
        }
        fn run_once(&mut self, _: Instant) {
            self.rounds.fetch_add(1, Ordering::Relaxed);
        }
        fn interval(&self) -> Duration {
            self.interval
        }
    }

    #[test]
    fn runs_at_once_then_on_its_interval_and_stops_promptly() {
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut workers = Workers::new();
        workers
            .spawn(Ticking {
                rounds: Arc::clone(&rounds),
                interval: Duration::from_millis(5),
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rounds.load(Ordering::Relaxed) < 3 {
            assert!(Instant::now() < deadline, "worker did not tick");
            thread::yield_now();
        }
        workers.shutdown(Duration::from_secs(5));
    }

    struct Stuck;

    impl Worker for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }
        fn run_once(&mut self, _: Instant) {
            // A step waiting out a long timeout.
            thread::sleep(Duration::from_secs(3));
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(3600)
        }
    }

    #[test]
    fn shutdown_leaves_a_stuck_worker_behind_after_the_grace_period() {
        let mut workers = Workers::new();
        workers.spawn(Stuck).unwrap();
        let stopping = Instant::now();
        workers.shutdown(Duration::from_millis(100));
        assert!(stopping.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn shutdown_does_not_wait_for_a_long_interval() {
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut workers = Workers::new();
        workers
            .spawn(Ticking {
                rounds: Arc::clone(&rounds),
                interval: Duration::from_secs(3600),
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rounds.load(Ordering::Relaxed) < 1 {
            assert!(Instant::now() < deadline, "worker did not start");
            thread::yield_now();
        }
        let stopping = Instant::now();
        workers.shutdown(Duration::from_secs(5));
        assert!(stopping.elapsed() < Duration::from_secs(5));
        assert_eq!(rounds.load(Ordering::Relaxed), 1);
    }
}
