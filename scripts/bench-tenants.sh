#!/usr/bin/env bash
# Many tenants at once (issue 24 item 4, BENCHMARKS.md "Many tenants at once").
#
#   scripts/bench-tenants.sh [USERS] [FILES] [OPS] [WORKERS...]
#       defaults: 100 users, 10000 files each, 1 organize each, 1 2 4 workers
#
# One run per worker count W, each from the same start: a fresh database
# (fo_bench_tenants), no tree left from the last run, `fileorg serve`
# (release build, WORKERS=0: it only answers the API, no Redis, rate limits
# raised) and W `fileorg worker --count 1` processes beside it. Then
# `fileorg loadtest --tenants USERS --files FILES --ops-per-tenant OPS`
# registers USERS users, writes each one's own synthetic tree of FILES files
# (seeded per user; OPS folders of FILES/OPS files), submits every organize
# in one burst, user by user (full organizes: planned and applied in one job,
# no dry run), and, while the workers run them, sends GetOperation at 200
# requests/s open loop from 20 clients (POLL_RATE changes the rate) until the
# last one ends. Its JSON report (data/reports/bench_tenants_w<W>.json) has
# the total time (first created → last ended, the server's clock), the wait
# in the queue (created → started) and created → ended per operation (p50,
# p95, max), each user's time until their last operation ended, the fairness
# figure (for each operation, the most operations one other user started
# while it was at the head of its user's queue; the claim bounds it by 1) and
# the GetOperation latencies. The load average before and after each run is
# printed with the summary: the machine is shared.
# The database and trees are removed at the end (KEEP=1 keeps the last run's).
# BENCH_ADDR, BENCH_DB and BENCH_ROOT move the server, database and trees off
# their defaults (127.0.0.1:50161, fo_bench_tenants, /tmp/fo-bench).
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

USERS="${1:-100}"
FILES="${2:-10000}"
OPS="${3:-1}"
shift $(($# < 3 ? $# : 3))
WORKER_COUNTS=("$@")
if [ "${#WORKER_COUNTS[@]}" -eq 0 ]; then WORKER_COUNTS=(1 2 4); fi
ADDR="${BENCH_ADDR:-127.0.0.1:50161}"
DB="${BENCH_DB:-fo_bench_tenants}"
POLL_RATE="${POLL_RATE:-200}"
export DATA_DIR="$BENCH_ROOT/data" STORAGE_ROOT="$BENCH_ROOT/storage"

ensure_services
release_build
mkdir -p data/reports
rm -f data/reports/bench_tenants_w*.json
: >data/reports/bench_tenants_loadavg.txt
for workers in "${WORKER_COUNTS[@]}"; do
    say "$USERS users x $FILES files ($OPS organizes each), $workers worker processes"
    rm -rf "$BENCH_ROOT"
    fresh_database "$DB"
    start_server "$ADDR" WORKERS=0
    for _ in $(seq 1 "$workers"); do
        "$FILEORG" worker --count 1 &
        BENCH_PIDS+=("$!")
    done
    before="$(cut -d' ' -f1-3 /proc/loadavg)"
    "$FILEORG" loadtest --addr "$ADDR" --tenants "$USERS" --files "$FILES" --ops-per-tenant "$OPS" \
        --seed 42 --poll-rate "$POLL_RATE" --concurrent 20 --organize-timeout 3000 \
        --server-pid "$SERVER_PID" --report --report-path "data/reports/bench_tenants_w$workers.json" \
        || echo "workers $workers: the loadtest exited $? (failed operations or requests: see its report)"
    echo "$workers $before $(cut -d' ' -f1-3 /proc/loadavg)" >>data/reports/bench_tenants_loadavg.txt
    bench_cleanup
done

say "summary"
python3 - data/reports/bench_tenants_loadavg.txt "${WORKER_COUNTS[@]}" <<'PY'
import json, sys
loads = {l.split()[0]: l.split()[1:] for l in open(sys.argv[1]) if l.strip()}
for w in sys.argv[2:]:
    r = json.load(open(f"data/reports/bench_tenants_w{w}.json"))
    t = r["tenants"]
    g = t.get("get_operation") or {}
    lat = g.get("latency_ms", {})
    f = t["fairness"]
    la = loads.get(w, ["?"] * 6)
    print(f"{w} worker(s): {t['tenants']} users x {t['files_per_tenant']} files "
          f"({t['ops_per_tenant']} organizes each, {t['files']} files): total {t['total_seconds']:.1f} s "
          f"({t['files_per_second']:.0f} files/s), {t['files_moved']} moved, states {t['states']}")
    print(f"  wait in queue p50 {t['wait_seconds']['p50']:.1f} p95 {t['wait_seconds']['p95']:.1f} "
          f"max {t['wait_seconds']['max']:.1f} s; created->ended p50 {t['end_to_end_seconds']['p50']:.1f} "
          f"p95 {t['end_to_end_seconds']['p95']:.1f} s; user done p50 {t['user_done_seconds']['p50']:.1f} "
          f"p95 {t['user_done_seconds']['p95']:.1f} s")
    print(f"  fairness: at most {f['most_started_ahead_by_one_user']} started ahead by one user "
          f"({f['operations_over_bound']} operations over the bound of {f['bound']})")
    print(f"  GetOperation: {g.get('total_requests', 0)} requests, p50 {lat.get('p50_ms', 0):.2f} "
          f"p95 {lat.get('p95_ms', 0):.2f} p99 {lat.get('p99_ms', 0):.2f} ms, "
          f"{g.get('failed_requests', 0)} failed")
    print(f"  load average before {' '.join(la[:3])}, after {' '.join(la[3:])}")
PY
if [ "${KEEP:-0}" != 1 ]; then
    drop_database "$DB"
    rm -rf "$BENCH_ROOT"
fi
