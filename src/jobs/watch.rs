//! Watched folders: a user's folder changed on the server's disk by
//! something other than the API (a mounted share, a sync tool) fires its
//! automation (docs/triggers.md).
//!
//! Each worker process runs [`run`]. It keeps a `notify` watch (inotify on
//! Linux; symlinks not followed) on the folder of every unpaused
//! watched-folder automation, reloading the list every SCHEDULER_POLL_MS. A
//! notification only says "look again": the folder is then rescanned beneath
//! the user's root (`storage::folder_state`, the same handle-based walk as
//! every other) and its digest compared with the one stored in the row
//! (`db::automations::swap_fingerprint`, a compare-and-set, so several
//! processes noticing one change mark it once). A changed folder that holds
//! files makes the automation due after its quiet period; the scheduler
//! (`jobs::automations`) fires it.
//!
//! Every folder is also rescanned every WATCH_RESCAN_SECS and when the
//! process starts: the fallback where notifications do not work (network
//! filesystems) and for changes made while no process ran. A folder is not
//! rescanned while its automation's own run is going (its moves are not an
//! outside change); it is once the run ended. The operation's destination
//! lies outside the folder (AutomationService refuses others), so a run
//! empties the folder of what it organized and does not fire itself again.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::Instant,
};

use notify::Watcher as _;
use uuid::Uuid;

use crate::{
    db::{self, automations::Automation},
    domain::QuietPeriod,
    error::{AppError, AppResult},
    state::AppState,
    storage::{self, StorageError, UserPath},
};

/// Paths notifications may queue before the rest are dropped (the rescan
/// catches what a dropped one would have said).
const EVENT_QUEUE: usize = 4096;

/// One watched folder.
struct Watched {
    row: Automation,
    /// Its absolute path, to match notifications against.
    absolute: PathBuf,
    /// Whether `notify` watches it.
    watching: bool,
    /// When watching it last failed (a folder not there yet, too many
    /// inotify watches for a huge tree): tried again only after
    /// WATCH_RESCAN_SECS, not at every reload.
    failed_at: Option<Instant>,
}

/// The watcher of this process; ends when shutdown begins.
pub async fn run(state: AppState) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PathBuf>(EVENT_QUEUE);
    let mut watcher = match notify::RecommendedWatcher::new(
        move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                for path in event.paths {
                    let _ = tx.try_send(path);
                }
            }
        },
        notify::Config::default().with_follow_symlinks(false),
    ) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, "filesystem notifications unavailable; watched folders rely on the rescan");
            None
        }
    };
    let mut watched: HashMap<Uuid, Watched> = HashMap::new();
    let mut dirty: HashSet<Uuid> = HashSet::new();
    let mut last_full: Option<Instant> = None;
    let mut shutdown = state.shutting_down.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Err(error) = reload(&state, &mut watched, &mut dirty, watcher.as_mut()).await {
            tracing::warn!(%error, "loading watched folders failed");
        }
        while let Ok(path) = rx.try_recv() {
            for (id, w) in &watched {
                if path.starts_with(&w.absolute) {
                    dirty.insert(*id);
                }
            }
        }
        if last_full.is_none_or(|t| t.elapsed() >= state.config.watch_rescan) {
            dirty.extend(watched.keys().copied());
            last_full = Some(Instant::now());
        }
        let pending: Vec<Uuid> = dirty.iter().copied().collect();
        for id in pending {
            let Some(w) = watched.get(&id) else {
                dirty.remove(&id);
                continue;
            };
            match rescan(&state, &w.row).await {
                Ok(true) => {
                    dirty.remove(&id);
                }
                // Its own run is going: look again once it ended.
                Ok(false) => {}
                Err(error) => {
                    dirty.remove(&id);
                    tracing::warn!(automation = %id, %error, "rescanning a watched folder failed");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.scheduler_poll) => {}
            Some(path) = rx.recv() => {
                for (id, w) in &watched {
                    if path.starts_with(&w.absolute) {
                        dirty.insert(*id);
                    }
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

/// Brings the watched set up to date with the database: new folders are
/// watched and rescanned at once, removed ones unwatched.
async fn reload(
    state: &AppState,
    watched: &mut HashMap<Uuid, Watched>,
    dirty: &mut HashSet<Uuid>,
    mut watcher: Option<&mut notify::RecommendedWatcher>,
) -> AppResult<()> {
    let rows = {
        let mut conn = state.db.get().await?;
        db::automations::watched(&mut conn).await?
    };
    let current: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    watched.retain(|id, w| {
        let keep = current.contains(id);
        if !keep
            && w.watching
            && let Some(watcher) = watcher.as_deref_mut()
        {
            let _ = watcher.unwatch(&w.absolute);
        }
        keep
    });
    for row in rows {
        let id = row.id;
        let entry = match watched.get_mut(&id) {
            // Changed settings (another folder): start over.
            Some(w) if w.row.folder_path != row.folder_path => {
                if w.watching
                    && let Some(watcher) = watcher.as_deref_mut()
                {
                    let _ = watcher.unwatch(&w.absolute);
                }
                watched.remove(&id);
                None
            }
            Some(w) => {
                w.row = row.clone();
                Some(w)
            }
            None => None,
        };
        let w = match entry {
            Some(w) => w,
            None => {
                let folder = row.folder_path.clone().unwrap_or_default();
                let absolute = state.user_root(row.user_id)?.path().join(&folder);
                dirty.insert(id);
                watched.entry(id).or_insert(Watched {
                    row,
                    absolute,
                    watching: false,
                    failed_at: None,
                })
            }
        };
        // A folder that does not exist yet is watched once it does.
        if !w.watching
            && w.failed_at
                .is_none_or(|t| t.elapsed() >= state.config.watch_rescan)
            && let Some(watcher) = watcher.as_deref_mut()
        {
            match watcher.watch(&w.absolute, notify::RecursiveMode::Recursive) {
                Ok(()) => w.watching = true,
                Err(error) => {
                    tracing::debug!(automation = %id, %error, "not watching a folder (the rescan still looks)");
                    // A partial recursive watch is dropped: the rescan covers it.
                    let _ = watcher.unwatch(&w.absolute);
                    w.failed_at = Some(Instant::now());
                }
            }
        }
    }
    Ok(())
}

/// Rescans one watched folder; a changed folder holding files makes its
/// automation due. False when its own run is going (nothing looked at).
async fn rescan(state: &AppState, row: &Automation) -> AppResult<bool> {
    let mut conn = state.db.get().await?;
    if let Some(last) = row.last_operation_id
        && let Some(op) = db::operations::find(&mut conn, last).await?
        && !op.state.is_at_rest()
    {
        return Ok(false);
    }
    // Not held while the folder is walked (it can be large): a pooled
    // connection held through disk work is one less for every request.
    drop(conn);
    let root = state.user_root(row.user_id)?;
    let folder = UserPath::parse(row.folder_path.as_deref().unwrap_or_default())
        .map_err(|e| AppError::internal(format!("a stored watched folder: {e}")))?;
    let seen =
        match tokio::task::spawn_blocking(move || storage::folder_state(&root, &folder)).await? {
            Ok(seen) => seen,
            // Not there (yet): nothing to organize.
            Err(StorageError::NotFound(_)) => return Ok(true),
            Err(error) => return Err(AppError::internal(format!("rescanning: {error}"))),
        };
    let mut conn = state.db.get().await?;
    if db::automations::swap_fingerprint(&mut conn, row.id, &seen.digest).await? && seen.files > 0 {
        db::automations::mark_one_changed(
            &mut conn,
            row.id,
            state.clock.now(),
            QuietPeriod::CAP_FACTOR as i32,
        )
        .await?;
        tracing::info!(automation = %row.id, files = seen.files, "watched folder changed");
    }
    Ok(true)
}
