//! Password policy and argon2id hashing.
//!
//! Hashing uses argon2's defaults, which are OWASP's recommended argon2id
//! parameters (m = 19 MiB, t = 2, p = 1). Hashing and verifying take tens of
//! milliseconds of CPU, so both run on the blocking pool, never on the async
//! runtime's workers. Unknown emails are verified against a fixed dummy hash
//! so a failed login takes the same time whether or not the account exists.
//!
//! At most one hash or verification per CPU runs at a time (the rest wait
//! their turn): more in parallel would not finish sooner, and each holds
//! 19 MiB, so a burst of logins could otherwise take hundreds of megabytes
//! (seen in the load test's realistic mix: 714 MB peak RSS).

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::{AppError, AppResult};

pub const MIN_CHARS: usize = 8;
pub const MAX_BYTES: usize = 128;

/// Checks the policy: at least 8 characters, at most 128 bytes.
pub fn check_policy(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_CHARS {
        return Err("must be at least 8 characters");
    }
    if password.len() > MAX_BYTES {
        return Err("must be at most 128 bytes");
    }
    Ok(())
}

fn hash_blocking(password: &str) -> AppResult<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(format!("argon2 hash: {e}")))
}

/// Permits to run argon2: one per CPU.
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// Runs `work` on the blocking pool once a permit is free.
async fn limited<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|e| AppError::internal(format!("argon2 permits: {e}")))?;
    Ok(tokio::task::spawn_blocking(work).await?)
}

/// Hashes a password into a PHC string, off the async runtime.
pub async fn hash(password: String) -> AppResult<String> {
    limited(move || hash_blocking(&password)).await?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("not-a-real-password-0000").expect("argon2 works"))
}

/// Verifies `password` against `stored` (or, when there is no account,
/// against a dummy hash, always answering false). Off the async runtime.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    limited(move || {
        let (hash, real) = match &stored {
            Some(h) => (h.as_str(), true),
            None => (dummy_hash(), false),
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok();
        ok && real
    })
    .await
}

/// Computes the dummy hash now, so the first failed login is not slower.
pub fn warm_up() {
    let _ = dummy_hash();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_argon2_runs_at_once_than_there_are_cpus() {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..cpus * 4)
            .map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                tokio::spawn(limited(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=cpus).contains(&peak),
            "{peak} ran at once on {cpus} CPUs"
        );
    }

    #[test]
    fn policy() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("12345678").is_ok());
        assert!(check_policy(&"x".repeat(129)).is_err());
        assert!(check_policy(&"x".repeat(128)).is_ok());
        // 8 characters but more bytes is fine; 43 four-byte characters are not.
        assert!(check_policy("ééééééééé").is_ok());
        assert!(check_policy(&"😀".repeat(33)).is_err());
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(
            !verify("not-a-real-password-0000".into(), None)
                .await
                .unwrap()
        );
    }
}
