#!/usr/bin/env bash
# The hash cache (issue 24 item 5; docs/organize.md, "Hash cache"): the same dry-run organize of
# an unchanged tree twice, and once more with the cache off, side by side in one invocation
# (BENCHMARKS.md).
#
#   scripts/bench-hash-cache.sh [FILES]   (default 100000 files)
#
# A fresh database and a fresh `fileorg serve` (release build, no Redis, rate limits raised);
# `fileorg loadtest --generate-only` writes the synthetic tree (seed 42, 10 % duplicates) into a
# new user's storage; after 3 s (the cache keeps only hashes of files whose ctime is more than
# 2 s older than the hash phase) the Python SDK runs three dry runs of the same organize, each
# with the page cache dropped first (as root): the first fills the cache, the second is
# answered by it, and a third on a server started with HASH_CACHE_DAYS=0 reads everything
# again. For each it prints the HASH phase time (the operation's phase_durations), the bytes
# the hash phase read (operations.bytes_hashed) and the end-to-end time; the plans must be
# equal. BENCH_ADDR, BENCH_DB and BENCH_ROOT move the server, database and tree off their
# defaults (127.0.0.1:50154, fo_bench_hash_cache, /tmp/fo-bench).
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

FILES="${1:-100000}"
ADDR="${BENCH_ADDR:-127.0.0.1:50154}"
DB="${BENCH_DB:-fo_bench_hash_cache}"
export DATA_DIR="$BENCH_ROOT/data" STORAGE_ROOT="$BENCH_ROOT/storage"

ensure_services
ensure_tools
release_build
need_kib=$((FILES * 13 + 1024 * 1024))
require_free_space "$(dirname "$BENCH_ROOT")" "$need_kib"
rm -rf "$BENCH_ROOT"
mkdir -p "$STORAGE_ROOT" "$DATA_DIR" data/reports
fresh_database "$DB"
PY=(env PYTHONPATH="$ROOT/sdk/python/src" "$ROOT/.venv/bin/python" scripts/bench_hash_cache.py)

# run LABEL [ENV=VALUE ...]: one dry run on a fresh server, page cache dropped first.
run() {
    local label="$1"; shift
    drop_page_cache
    start_server "$ADDR" "$@"
    "${PY[@]}" run "$ADDR" "$label"
    stop_server "$SERVER_PID"
}

start_server "$ADDR"
"${PY[@]}" register "$ADDR"
stop_server "$SERVER_PID"
user_id="$(cat "$DATA_DIR/bench-user-id")"
say "writing $FILES files into the user's inbox"
"$FILEORG" loadtest --files "$FILES" --seed 42 --generate-only "$STORAGE_ROOT/$user_id/inbox"
sleep 3
say "dry run 1: fills the hash cache"
run first
say "dry run 2: the same tree, unchanged"
run second
say "dry run 3: the cache off (HASH_CACHE_DAYS=0)"
run off HASH_CACHE_DAYS=0

say "summary"
"${PY[@]}" summary "$DB"
if [ "${KEEP:-0}" != 1 ]; then
    drop_database "$DB"
    rm -rf "$BENCH_ROOT"
fi
