//! The organize engine: a library that knows nothing of gRPC.
//!
//! Pipeline: [`scan`] → [`categorize`] (and, for a layout with `{taken_…}`
//! tokens, the capture dates of [`taken`]) → [`duplicates`] → [`plan`] → journal
//! (`db::file_records`) → apply (`jobs::organize`) → report; plus undo and
//! crash recovery (`jobs`). [`progress`] is shared by all steps. The engine
//! speaks the domain's types (`domain`: policies, journal rows, counters);
//! it knows nothing of the database, the jobs or the API above it.

pub mod archive;
pub(crate) mod categorize;
pub mod duplicates;
pub mod hash_cache;
pub(crate) mod parallel;
pub(crate) mod plan;
pub mod progress;
pub(crate) mod rule;
pub mod scan;
pub(crate) mod spec;
pub mod spill;
pub(crate) mod taken;
pub(crate) mod template;

/// Hands memory freed by the engine back to the operating system.
///
/// glibc keeps freed memory in the malloc arena it came from, and every
/// thread that allocates gets an arena of its own: the scan's threads, for
/// instance, leave their freed buffers where the threads that plan and apply
/// never reuse them. Measured at 1M files: a server that had run one
/// organize still held 335 MB idle and peaked at 567 MB during the next one;
/// a parallel scan added ~100 MB to the peak (BENCHMARKS.md). `malloc_trim`
/// returns the free pages of every arena; called after the scan and after
/// every job.
///
/// The `fileorg` binary allocates with mimalloc (`src/main.rs`), which
/// returns freed pages by itself shortly after they are freed (measured:
/// ~60 MB idle after a 1M organize); there this only trims what glibc's own
/// heap holds. It still matters wherever the system allocator is in use (the
/// library's tests, an embedding program).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
