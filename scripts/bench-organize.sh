#!/usr/bin/env bash
# The 1M-file organize of issue 7, end to end through the API (BENCHMARKS.md).
#
#   scripts/bench-organize.sh [FILES] [RUNS]        (defaults: 1000000 files, 1 run)
#
# Each run starts alike: a fresh database (fo_bench_organize, migrated), no
# tree left from the last run, the page cache dropped (as root), a fresh
# `fileorg serve` (release build, no Redis, rate limits raised). Then
# `fileorg loadtest --files FILES --seed 42` writes the synthetic tree into
# a new user's storage (so it is in the page cache), organizes it through the
# gRPC API and writes its JSON report to data/reports/bench_organize_<run>.json:
# end-to-end time, the server's per-phase times, files/s, the server's peak
# RSS (VmHWM) and CPU from /proc, the search index's delay and, when the
# local PostgreSQL preloads pg_stat_statements, the run's slowest statements.
# MIX=1 adds 10 s of the realistic request mix from 100 clients right after
# the organize, against the database that now holds its journal.
# TEMPLATES='A;B;…' organizes the same tree (same seed) once per layout
# template in each run, in that order, each from the same fresh start (an
# empty entry is the server's default, `{category}/{name}`): e.g.
# TEMPLATES=';{taken_year}/{taken_month}/{name}' compares the default with a
# layout that reads capture dates (BENCHMARKS.md).
# The database and the tree are removed at the end (KEEP=1 keeps the last).
# RSS_BY_PHASE=1 samples the server's VmRSS every 0.2 s with the operation's
# phase and prints the highest per phase (data/reports/bench_organize_<run>_rss.txt).
# FILEORG_BIN=PATH runs that binary instead of building (bench-lib.sh).
# BENCH_ADDR, BENCH_DB and BENCH_ROOT move the server, database and tree off
# their defaults (127.0.0.1:50151, fo_bench_organize, /tmp/fo-bench), e.g. to run
# beside another benchmark.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

FILES="${1:-1000000}"
RUNS="${2:-1}"
ADDR="${BENCH_ADDR:-127.0.0.1:50151}"
DB="${BENCH_DB:-fo_bench_organize}"
export DATA_DIR="$BENCH_ROOT/data" STORAGE_ROOT="$BENCH_ROOT/storage"

ensure_services
release_build
say "pg_stat_statements: $(pg_stat_statements_state)"
mkdir -p data/reports
rm -f data/reports/bench_organize_*.json data/reports/bench_organize_*_rss.txt
IFS=';' read -r -a templates <<<"${TEMPLATES:-}"
if [ "${#templates[@]}" -eq 0 ]; then templates=(""); fi
for run in $(seq 1 "$RUNS"); do
    for t in "${!templates[@]}"; do
        template="${templates[$t]}"
        say "run $run of $RUNS: $FILES files, layout template '${template:-(default)}'"
        rm -rf "$BENCH_ROOT"
        fresh_database "$DB"
        if [ "$(pg_stat_statements_state)" = loaded ]; then
            psql -X -q -d "$DATABASE_URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
        fi
        drop_page_cache
        start_server "$ADDR"
        load=()
        if [ "${MIX:-0}" = 1 ]; then load=(--concurrent 100 --duration 10); fi
        report="data/reports/bench_organize_$run.json"
        if [ "${#templates[@]}" -gt 1 ]; then report="data/reports/bench_organize_${run}_t$t.json"; fi
        if [ "${RSS_BY_PHASE:-0}" = 1 ]; then
            sample_rss_by_phase "$SERVER_PID" "$DATABASE_URL" "${report%.json}_rss.txt"
        fi
        "$FILEORG" loadtest --addr "$ADDR" --files "$FILES" --seed 42 --organize-timeout 1500 \
            --layout-template "$template" \
            "${load[@]}" --server-pid "$SERVER_PID" --report --report-path "$report" \
            || echo "run $run: the loadtest exited $? (a failed organize or failed requests: see $report)"
        stop_server "$SERVER_PID"
        if [ "${RSS_BY_PHASE:-0}" = 1 ]; then
            wait "$SAMPLER_PID" 2>/dev/null || true
            say "run $run: peak VmRSS by phase: $(rss_by_phase "${report%.json}_rss.txt")"
        fi
    done
done

say "summary"
python3 - data/reports/bench_organize_*.json <<'PY'
import json, sys
for path in sorted(sys.argv[1:]):
    r = json.load(open(path))
    o = r["organize"]
    phases = ", ".join(f"{k} {v:.1f}" for k, v in o["phase_seconds"].items() if v)
    template = o.get("layout_template") or "(default)"
    taken = o.get("taken_dates") or {}
    dates = (f"; dates from metadata {taken.get('from_metadata', 0)}, from mtime {taken.get('from_mtime', 0)}"
             if o.get("layout_template") else "")
    print(f"{path}: template {template}{dates}")
    print(f"  {o['files']} files in {o['end_to_end_seconds']:.1f} s "
          f"({o['files_per_second']:.0f} files/s), peak RSS {o['server'].get('peak_rss_mb', 0):.0f} MB; "
          f"{phases}; search index +{o['search_names_indexed'].get('seconds_after_organize') or 0:.1f} s")
    if r.get("load"):
        l = r["load"]
        print(f"  mix: {l['throughput_rps']:.0f} req/s, p95 {l['latency_ms']['p95_ms']:.1f} ms, "
              f"{l['failed_requests']} failed")
PY
if [ "${KEEP:-0}" != 1 ]; then
    drop_database "$DB"
    rm -rf "$BENCH_ROOT"
fi
