#!/usr/bin/env bash
# Undo against the organize it undoes (issue 24): the same operation's apply
# phase and undo, side by side in one run (BENCHMARKS.md).
#
#   scripts/bench-undo.sh [FILES] [RUNS]        (defaults: 1000000 files, 1 run)
#
# Each run starts alike: a fresh database (fo_bench_undo, migrated), no tree
# left from the last run, the page cache dropped (as root), a fresh
# `fileorg serve` (release build, no Redis, rate limits raised). Then
# `fileorg loadtest --files FILES --seed 42 --undo` writes the synthetic tree
# into a new user's storage, organizes it through the gRPC API, undoes that
# organize through the API as soon as it succeeded, and writes its JSON
# report to data/reports/bench_undo_<run>.json. The summary prints, from the
# server's own phase clock (Operation.phase_durations), the organize's APPLY
# phase and the undo's UNDO phase (every file moved back, recorded, and the
# emptied folders removed), their ratio, and the load average.
# The database and the tree are removed at the end (KEEP=1 keeps the last).
# BENCH_ADDR, BENCH_DB and BENCH_ROOT move the server, database and tree off
# their defaults (127.0.0.1:50161, fo_bench_undo, /tmp/fo-bench-undo).
set -euo pipefail
exec </dev/null
BENCH_ROOT="${BENCH_ROOT:-/tmp/fo-bench-undo}"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

FILES="${1:-1000000}"
RUNS="${2:-1}"
ADDR="${BENCH_ADDR:-127.0.0.1:50161}"
DB="${BENCH_DB:-fo_bench_undo}"
export DATA_DIR="$BENCH_ROOT/data" STORAGE_ROOT="$BENCH_ROOT/storage"

ensure_services
release_build
mkdir -p data/reports
rm -f data/reports/bench_undo_*.json
for run in $(seq 1 "$RUNS"); do
    say "run $run of $RUNS: $FILES files, organize then undo"
    rm -rf "$BENCH_ROOT"
    fresh_database "$DB"
    drop_page_cache
    start_server "$ADDR"
    report="data/reports/bench_undo_$run.json"
    "$FILEORG" loadtest --addr "$ADDR" --files "$FILES" --seed 42 --organize-timeout 1500 --undo \
        --server-pid "$SERVER_PID" --report --report-path "$report" \
        || echo "run $run: the loadtest exited $? (a failed organize or undo: see $report)"
    echo "load average after run $run: $(cut -d' ' -f1-3 /proc/loadavg)"
    stop_server "$SERVER_PID"
done

say "summary"
python3 - data/reports/bench_undo_*.json <<'PY'
import json, sys
for path in sorted(sys.argv[1:]):
    r = json.load(open(path))
    o, u = r["organize"], r.get("undo") or {}
    apply = o["phase_seconds"].get("apply", 0)
    undo = (u.get("phase_seconds") or {}).get("undo", 0)
    print(f"{path}: {o['files']} files; organize {o['state']}, {o['counters']['files_moved']} moved; "
          f"undo {u.get('state', 'not run')}, {(u.get('counters') or {}).get('files_moved', 0)} moved back")
    print(f"  apply phase {apply:.2f} s, undo phase {undo:.2f} s (undo / apply {undo / apply if apply else 0:.2f}); "
          f"undo end to end {u.get('end_to_end_seconds', 0):.2f} s, "
          f"server peak RSS {(u.get('server') or {}).get('peak_rss_mb', 0):.0f} MB")
PY
if [ "${KEEP:-0}" != 1 ]; then
    drop_database "$DB"
    rm -rf "$BENCH_ROOT"
fi
