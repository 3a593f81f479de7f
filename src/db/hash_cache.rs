//! The `hash_cache` table: per user, the hashes a hash phase read, by the
//! key the scan saw (`engine::hash_cache` has the rules and why they hold).
//!
//! Every statement names the user: one user's rows never answer another's
//! lookup, even for the same device and inode (two users' roots can share a
//! filesystem, and inode numbers repeat across filesystems). Lookups and
//! writes go in batches of [`BATCH`] keys as arrays (`unnest`), never a
//! statement per file.

use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Nullable, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::hash_cache::{CacheKey, Known};

/// Keys per statement.
pub const BATCH: usize = 5000;

/// A row found for a looked-up (device, inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The key the hashes were read under (compare it with the scan's).
    pub key: CacheKey,
    pub known: Known,
    /// Not refreshed for a day: a hit should touch it so it does not expire.
    pub stale: bool,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    dev: i64,
    #[diesel(sql_type = BigInt)]
    ino: i64,
    #[diesel(sql_type = BigInt)]
    size: i64,
    #[diesel(sql_type = BigInt)]
    mtime_ns: i64,
    #[diesel(sql_type = BigInt)]
    ctime_ns: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    head_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    full_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Bool)]
    stale: bool,
}

fn hash(bytes: Option<Vec<u8>>) -> Option<[u8; 32]> {
    bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

/// The user's rows for these files' (device, inode), whatever their key: the
/// caller compares [`Cached::key`] with the scan's.
pub async fn lookup(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keys: &[CacheKey],
) -> diesel::QueryResult<Vec<Cached>> {
    let mut found = Vec::new();
    for batch in keys.chunks(BATCH) {
        let devs: Vec<i64> = batch.iter().map(|k| k.dev).collect();
        let inos: Vec<i64> = batch.iter().map(|k| k.ino).collect();
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT c.dev, c.ino, c.size, c.mtime_ns, c.ctime_ns, c.head_hash, c.full_hash,
                    c.seen_at < now() - interval '1 day' AS stale
             FROM unnest($2::bigint[], $3::bigint[]) AS k (dev, ino)
             JOIN hash_cache c ON c.user_id = $1 AND c.dev = k.dev AND c.ino = k.ino",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Array<BigInt>, _>(devs)
        .bind::<Array<BigInt>, _>(inos)
        .load(conn)
        .await?;
        found.extend(rows.into_iter().map(|row| Cached {
            key: CacheKey {
                dev: row.dev,
                ino: row.ino,
                size: row.size,
                mtime_ns: row.mtime_ns,
                ctime_ns: row.ctime_ns,
            },
            known: Known {
                head: hash(row.head_hash),
                full: hash(row.full_hash),
            },
            stale: row.stale,
        }));
    }
    Ok(found)
}

/// Writes (or overwrites) the user's rows for these files, seen now. Keys
/// must be distinct by (device, inode) within the slice (the scan's are:
/// hard links are taken once). Entries that know nothing are left out.
pub async fn store(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    entries: &[(CacheKey, Known)],
) -> diesel::QueryResult<usize> {
    let mut written = 0;
    let entries: Vec<&(CacheKey, Known)> = entries
        .iter()
        .filter(|(_, k)| k.head.is_some() || k.full.is_some())
        .collect();
    for batch in entries.chunks(BATCH) {
        let column = |f: fn(&CacheKey) -> i64| batch.iter().map(|(k, _)| f(k)).collect::<Vec<_>>();
        let heads: Vec<Option<Vec<u8>>> = batch
            .iter()
            .map(|(_, k)| k.head.map(|h| h.to_vec()))
            .collect();
        let fulls: Vec<Option<Vec<u8>>> = batch
            .iter()
            .map(|(_, k)| k.full.map(|h| h.to_vec()))
            .collect();
        written += diesel::sql_query(
            "INSERT INTO hash_cache
                 (user_id, dev, ino, size, mtime_ns, ctime_ns, head_hash, full_hash, seen_at)
             SELECT $1, dev, ino, size, mtime_ns, ctime_ns, head_hash, full_hash, now()
             FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::bytea[], $8::bytea[])
                  AS e (dev, ino, size, mtime_ns, ctime_ns, head_hash, full_hash)
             ON CONFLICT (user_id, dev, ino) DO UPDATE SET
                 size = EXCLUDED.size, mtime_ns = EXCLUDED.mtime_ns,
                 ctime_ns = EXCLUDED.ctime_ns, head_hash = EXCLUDED.head_hash,
                 full_hash = EXCLUDED.full_hash, seen_at = EXCLUDED.seen_at",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Array<BigInt>, _>(column(|k| k.dev))
        .bind::<Array<BigInt>, _>(column(|k| k.ino))
        .bind::<Array<BigInt>, _>(column(|k| k.size))
        .bind::<Array<BigInt>, _>(column(|k| k.mtime_ns))
        .bind::<Array<BigInt>, _>(column(|k| k.ctime_ns))
        .bind::<Array<Nullable<Bytea>>, _>(heads)
        .bind::<Array<Nullable<Bytea>>, _>(fulls)
        .execute(conn)
        .await?;
    }
    Ok(written)
}

/// Deletes the user's rows not seen for `days` days (files deleted, moved
/// away or no longer scanned).
pub async fn prune(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    days: u32,
) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM hash_cache WHERE user_id = $1 AND seen_at < now() - make_interval(days => $2)",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Integer, _>(i32::try_from(days).unwrap_or(i32::MAX))
    .execute(conn)
    .await
}
