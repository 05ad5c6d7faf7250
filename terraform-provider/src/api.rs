//! The provider's handle on a Conflux endpoint: the typed client plus the retry policy.
//!
//! A node without a leader answers `503` with `Retry-After`; a request may also time out.
//! Both are retried with exponential backoff (honouring `Retry-After`, bounded), which is
//! safe for writes because every write carries an idempotency key that stays the same across
//! its retries ([`Api::write_options`]). Anything else is returned at once.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use conflux_client::{ApiClient, ClientError, WriteOptions};

/// Retries of one request after its first attempt, unless the provider block says otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// First backoff; doubled per retry.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Upper bound of one backoff, and of a `Retry-After` the provider honours.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Api {
    pub client: ApiClient,
    pub max_retries: u32,
    /// Becomes `true` when Terraform asks the provider to stop (Ctrl-C): long waits (for a
    /// proposal's approval) end then. `None`: never asked.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

static WRITE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Api {
    pub fn new(client: ApiClient, max_retries: u32) -> Api {
        Api {
            client,
            max_retries,
            stop: None,
        }
    }

    /// This handle, ending its long waits when `stop` becomes `true`.
    pub fn with_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Api {
        self.stop = Some(stop);
        self
    }

    /// Returns once Terraform asked the provider to stop; never without a stop signal.
    pub async fn stopped(&self) {
        match self.stop.clone() {
            Some(mut rx) => {
                // An error means the sender is gone: the provider is shutting down.
                let _ = rx.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Options for one logical write: a fresh idempotency key, reused by its retries.
    pub fn write_options(&self) -> WriteOptions {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = WRITE_COUNTER.fetch_add(1, Ordering::Relaxed);
        WriteOptions::default()
            .idempotency_key(format!("terraform-{}-{nanos:x}-{n}", std::process::id()))
    }

    /// Runs `request` until it succeeds, fails for good, or the retries are used up.
    pub async fn retry<T, F, Fut>(&self, request: F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.retry_when(worth_retrying, request).await
    }

    /// [`Api::retry`] for a write without an idempotency key (the identity endpoints): only
    /// a 503, which the server answers before doing anything, is retried. A timed-out
    /// request may have been carried out, and a second attempt could do it twice.
    pub async fn retry_unavailable<T, F, Fut>(&self, request: F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.retry_when(ClientError::is_unavailable, request).await
    }

    async fn retry_when<T, F, Fut>(
        &self,
        worth_retrying: fn(&ClientError) -> bool,
        request: F,
    ) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 0u32;
        loop {
            match request().await {
                Err(e) if attempt < self.max_retries && worth_retrying(&e) => {
                    tokio::time::sleep(backoff(attempt, e.retry_after_secs())).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// 503s (no leader, write timeout inside the cluster) and requests that timed out.
fn worth_retrying(e: &ClientError) -> bool {
    e.is_unavailable() || e.code() == "timeout"
}

fn backoff(attempt: u32, retry_after_secs: Option<u64>) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16));
    let wait = match retry_after_secs {
        Some(s) => Duration::from_secs(s).max(BACKOFF_BASE),
        None => exp,
    };
    wait.min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn unavailable() -> ClientError {
        // Built the way the client builds it from a 503 answer.
        ClientError::Api {
            status: 503,
            code: "not_leader".into(),
            message: "no leader".into(),
            field: None,
            details: Vec::new(),
            retry_after_secs: Some(0),
        }
    }

    fn api(max_retries: u32) -> Api {
        Api::new(ApiClient::new("http://127.0.0.1:1").unwrap(), max_retries)
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff(0, None), Duration::from_millis(250));
        assert_eq!(backoff(2, None), Duration::from_secs(1));
        assert_eq!(backoff(30, None), BACKOFF_MAX);
        assert_eq!(backoff(0, Some(3)), Duration::from_secs(3));
        assert_eq!(backoff(0, Some(3600)), BACKOFF_MAX);
        assert_eq!(backoff(0, Some(0)), BACKOFF_BASE);
    }

    #[tokio::test]
    async fn unavailable_is_retried_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r = api(5)
            .retry(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(unavailable())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded_and_other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = api(2)
            .retry(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(unavailable())
            })
            .await;
        assert!(r.unwrap_err().is_unavailable());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = api(5)
            .retry(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ClientError::Api {
                    status: 409,
                    code: "tenant_already_exists".into(),
                    message: "exists".into(),
                    field: None,
                    details: Vec::new(),
                    retry_after_secs: None,
                })
            })
            .await;
        assert_eq!(r.unwrap_err().code(), "tenant_already_exists");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn writes_without_a_key_are_not_retried_after_a_timeout() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = api(5)
            .retry_unavailable(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ClientError::Transport {
                    endpoint: "http://127.0.0.1:1".into(),
                    timed_out: true,
                    message: "timed out".into(),
                })
            })
            .await;
        assert_eq!(r.unwrap_err().code(), "timeout");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r = api(5)
            .retry_unavailable(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 1 {
                    Err(unavailable())
                } else {
                    Ok(1)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 1);
    }

    #[tokio::test]
    async fn stopped_returns_once_terraform_asks_to_stop() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let a = api(0).with_stop(rx);
        let waiting = tokio::spawn(async move { a.stopped().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        tx.send_replace(true);
        waiting.await.unwrap();
        // Asked before the wait began: it returns at once.
        api(0).with_stop(tx.subscribe()).stopped().await;
    }

    #[test]
    fn write_options_carry_distinct_keys() {
        let a = api(0);
        let k1 = a.write_options().idempotency_key.unwrap();
        let k2 = a.write_options().idempotency_key.unwrap();
        assert_ne!(k1, k2);
        assert!(k1.bytes().all(|b| b.is_ascii_graphic()) && k1.len() < 255);
    }
}
