//! The process's limit on open files, raised to what the system allows.
//!
//! Linux starts a service with a soft `RLIMIT_NOFILE` of 1,024 under
//! systemd and most container runtimes, far below the hard limit (often
//! 524,288). The server's descriptors add up across users: every HTTP/2
//! connection, every pool connection, the hashing threads' open files, and
//! an archive import's pending files (each keeps its folder open until the
//! batch's `syncfs`, `engine::archive::sink`). A few imports at once on the
//! soft default would fail with EMFILE ("too many open files") in the middle
//! of a user's archive. So `fileorg serve` and `fileorg worker` raise the
//! soft limit to the hard one at start-up, as servers such as nginx
//! (`worker_rlimit_nofile`) and Go's runtime (since 1.19) do; the hard limit
//! stays the operator's to set.

/// The soft and hard limits on open files after raising the soft one to
/// the hard one (unchanged when it already was).
pub fn raise_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct passed, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct passed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// [`raise_limit`], logged: a failure is a warning, not a reason not to
/// start (the server works, with fewer files open at once).
pub fn raise_limit_logged() {
    match raise_limit() {
        Ok((soft, hard)) => tracing::info!(soft, hard, "limit on open files"),
        Err(error) => tracing::warn!(%error, "could not raise the limit on open files"),
    }
}
