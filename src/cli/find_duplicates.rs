//! `fileorg find-duplicates DIR`: the engine's duplicate finder (scan +
//! staged hashing, exactly the code an organize runs) on a local folder,
//! with no server, database or moves. It exists to measure that phase side
//! by side with `fclones group` and `czkawka_cli dup` on the same tree
//! (scripts/bench-duplicates.sh, BENCHMARKS.md), and is handy on its own.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use fileorganizer::{
    engine::{duplicates, progress::Progress, scan, spill},
    storage::{UserPath, UserRoot},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The folder to scan (hidden entries and symlinks are skipped, hard
    /// links count once, as in an organize).
    pub dir: PathBuf,
    /// Hashing threads (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Records each sort holds in memory before it spills to a temporary
    /// file (as ORGANIZE_SPILL_RECORDS does for an organize); default: never
    /// spill. For measuring what spilling costs (BENCHMARKS.md).
    #[arg(long)]
    pub spill_records: Option<std::num::NonZeroUsize>,
}

/// Peak resident set of this process, in KiB (VmHWM).
fn peak_rss_kib() -> Option<u64> {
    crate::cli::loadtest::stats::read_rss_kb(std::process::id()).map(|(_, peak)| peak)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    anyhow::ensure!((1..=256).contains(&threads), "--threads must be 1..=256");
    let root = UserRoot::open_existing(&args.dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.dir.display()))?;
    let progress = Progress::default();
    let started = Instant::now();
    let scanned = scan::scan(
        &root,
        &UserPath::root(),
        &scan::ScanOptions {
            threads,
            ..Default::default()
        },
        &progress,
    )?;
    let scan_secs = started.elapsed().as_secs_f64();
    // No hash cache here: this measures the hashing itself.
    let known = Default::default();
    let spill = match args.spill_records {
        Some(records) => spill::Spill::new(std::env::temp_dir(), records),
        None => spill::Spill::in_memory(),
    };
    let analysis = duplicates::find_duplicates(
        &root,
        &scanned.files,
        false,
        &known,
        threads,
        &progress,
        &spill,
    )?;
    let total_secs = started.elapsed().as_secs_f64();
    let copies = analysis.duplicates;
    let hashed = analysis.hashed();
    let peak_rss = peak_rss_kib();
    let summary = serde_json::json!({
        "dir": args.dir.display().to_string(),
        "threads": threads,
        "files": scanned.files.len(),
        "skipped": scanned.skipped.len(),
        "files_hashed": hashed,
        "bytes_read": analysis.bytes_read,
        "unreadable": analysis.unreadable.len(),
        "groups": analysis.groups,
        "duplicate_copies": copies,
        "reclaimable_bytes": progress.reclaimable_bytes.load(std::sync::atomic::Ordering::Relaxed),
        "scan_seconds": scan_secs,
        "hash_seconds": total_secs - scan_secs,
        "total_seconds": total_secs,
        "peak_rss_kib": peak_rss,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} files ({} skipped): {} duplicate groups, {} redundant copies, {} files hashed; \
             scan {scan_secs:.2} s + hash {:.2} s = {total_secs:.2} s on {threads} threads; peak RSS {} KiB",
            scanned.files.len(),
            scanned.skipped.len(),
            analysis.groups,
            copies,
            hashed,
            total_secs - scan_secs,
            peak_rss.unwrap_or(0),
        );
    }
    Ok(ExitCode::SUCCESS)
}
