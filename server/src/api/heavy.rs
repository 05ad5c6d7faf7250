//! CPU-heavy request work: version diffs and `validate_only` checks (parsing and schema
//! validation of up to 4 MiB).
//!
//! The async workers also carry this node's Raft heartbeats and elections. A request that
//! computes for seconds on one of them starves that work, and a few at once cost the leader
//! its leadership. So heavy work runs on Tokio's blocking threads, and at most
//! [`HEAVY_JOBS_PER_CPU`] per CPU of it at once: further requests wait for a slot instead of
//! piling up CPU time.

use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::error::ApiError;

/// Heavy jobs one node runs at once, per CPU it may use.
pub const HEAVY_JOBS_PER_CPU: usize = 1;

/// The node's slots for heavy jobs; clones share them.
#[derive(Debug, Clone)]
pub struct HeavyJobs(Arc<Semaphore>);

impl HeavyJobs {
    /// [`HEAVY_JOBS_PER_CPU`] slots per CPU this process may use.
    pub fn per_cpu() -> HeavyJobs {
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        HeavyJobs::new(cpus * HEAVY_JOBS_PER_CPU)
    }

    pub fn new(slots: usize) -> HeavyJobs {
        assert!(slots > 0, "heavy jobs need at least one slot");
        HeavyJobs(Arc::new(Semaphore::new(slots)))
    }

    /// Runs `job` on a blocking thread once a slot is free. The slot is held until the job
    /// returns, even when the request that started it has gone away meanwhile (a blocking
    /// job cannot be cancelled; its CPU is spent either way).
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let slot = self
            .0
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            job()
        })
        .await
        .map_err(|e| ApiError::internal(format!("a heavy job failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_jobs_run_at_once_than_there_are_slots() {
        let jobs = HeavyJobs::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (jobs, running, most) = (jobs.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    jobs.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(now)
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 2, "{most} jobs ran at once");
    }
}
