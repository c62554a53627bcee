//! A fixed set of threads for scrypt, with a short queue.
//!
//! scrypt needs 16 MiB and ~25 ms per call. Running it on tokio's blocking pool would let memory
//! grow with every thread that ever hashed; here at most `threads` hashes run at once and at most
//! `queue` wait. Anything beyond is refused at once ([`Error::Busy`]), so a flood of wrong secrets
//! costs bounded CPU and memory and cannot starve the async runtime.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::Error;

type Job = Box<dyn FnOnce() + Send>;

/// The pool. Threads end when it is dropped.
#[derive(Debug)]
pub(crate) struct HashPool {
    jobs: SyncSender<Job>,
}

impl HashPool {
    /// `threads` workers (at least one) and room for `queue` waiting jobs.
    pub(crate) fn new(threads: usize, queue: usize) -> Result<Self, Error> {
        let threads = threads.max(1);
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("knowmind-scrypt-{i}"))
                .spawn(move || {
                    loop {
                        // Hold the lock only while taking a job, not while running it.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool was dropped
                        }
                    }
                })
                .map_err(|e| {
                    Error::invalid("hash_threads", format!("cannot start a thread: {e}"))
                })?;
        }
        Ok(HashPool { jobs })
    }

    /// Runs `work` on the pool.
    ///
    /// # Errors
    /// [`Error::Busy`] if every thread is working and the queue is full.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => Error::Busy,
        })?;
        result.await.map_err(|_| Error::Busy)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use super::*;

    type Job = Pin<Box<dyn Future<Output = Result<i32, Error>>>>;

    #[tokio::test]
    async fn runs_work_and_refuses_beyond_threads_plus_queue() {
        let pool = Arc::new(HashPool::new(2, 1).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let mut accepted: Vec<Job> = Vec::new();
        let mut busy = 0;
        for i in 0..6 {
            let (running, peak, gate) = (running.clone(), peak.clone(), gate.clone());
            let started_tx = started_tx.clone();
            let pool = pool.clone();
            let mut job: Pin<Box<dyn Future<Output = Result<i32, Error>>>> = Box::pin(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = started_tx.send(());
                    let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    7
                })
                .await
            });
            // One poll hands the job to the pool, or is refused at once.
            match job.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(result) => {
                    assert!(matches!(result, Err(Error::Busy)), "job {i}");
                    busy += 1;
                }
                Poll::Pending => {
                    // The first two must reach a thread before the next is offered (a readiness
                    // signal, not a sleep): the third then waits in the queue.
                    if i < 2 {
                        started.recv_timeout(Duration::from_secs(5)).unwrap();
                    }
                    accepted.push(job);
                }
            }
        }
        // Two running, one queued; the other three were refused at once.
        assert_eq!(accepted.len(), 3);
        assert_eq!(busy, 3);
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        for job in accepted {
            assert_eq!(job.await.unwrap(), 7);
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "never more than `threads` at once"
        );
    }
}
