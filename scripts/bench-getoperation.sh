#!/usr/bin/env bash
# GetOperation against its ceiling, and the request mix (issue 7, BENCHMARKS.md).
#
#   scripts/bench-getoperation.sh [ROUNDS]        (default: 3)
#
# One run: a fresh database (fo_bench_getop), `fileorg serve` (release build,
# Redis on with its own key prefix, rate limits raised) and the bare tonic
# hello-world server (`fileorg loadtest --serve-hello-world`, the ceiling),
# both on loopback. Then, ROUNDS times and interleaved so both see the same
# machine: 100 closed-loop clients for 10 s of GetOperation against the
# server, the same against hello-world. Then GetOperation open loop at 5,000
# requests/s, and 10 s of the realistic mix from 100 clients. Each writes its
# JSON report to data/reports/bench_<what>.json; the summary gives the
# ratio to the ceiling, p95 and errors. Everything is removed at the end.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

ROUNDS="${1:-3}"
ADDR=127.0.0.1:50151
HELLO=127.0.0.1:50152
DB=fo_bench_getop
PREFIX="fo-bench-$$:"
export DATA_DIR="$BENCH_ROOT/data" STORAGE_ROOT="$BENCH_ROOT/storage"

ensure_services
release_build
rm -rf "$BENCH_ROOT"
fresh_database "$DB"
start_server "$ADDR" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$PREFIX"
start_hello_world "$HELLO"
mkdir -p data/reports
rm -f data/reports/bench_getop_*.json data/reports/bench_hello_*.json

run() {
    local name="$1"; shift
    say "$name"
    "$FILEORG" loadtest "$@" --concurrent 100 --report --report-path "data/reports/bench_$name.json"
}
for round in $(seq 1 "$ROUNDS"); do
    run "getop_$round" --addr "$ADDR" --mix get-operation --duration 10 --server-pid "$SERVER_PID"
    run "hello_$round" --addr "$HELLO" --hello-world --mix get-operation --duration 10 --server-pid "$HELLO_PID"
done
run getop_open --addr "$ADDR" --mix get-operation --duration 10 --rate 5000 --server-pid "$SERVER_PID"
run mix --addr "$ADDR" --duration 10 --server-pid "$SERVER_PID"

say "summary"
python3 - "$ROUNDS" <<'PY'
import json, sys
load = lambda name: json.load(open(f"data/reports/bench_{name}.json"))["load"]
def line(l):
    s = l["server"]
    us = s.get("avg_cpu_percent", 0) / 100 * l["duration_seconds"] / max(l["total_requests"], 1) * 1e6
    return (f"{l['throughput_rps']:>8.0f} req/s  p50 {l['latency_ms']['p50_ms']:.2f}  "
            f"p95 {l['latency_ms']['p95_ms']:.2f}  p99 {l['latency_ms']['p99_ms']:.2f} ms  "
            f"{l['failed_requests']} failed  server {us:.0f} µs CPU/request")
for r in range(1, int(sys.argv[1]) + 1):
    g, h = load(f"getop_{r}"), load(f"hello_{r}")
    print(f"round {r}: GetOperation {line(g)}")
    print(f"         hello-world  {line(h)}")
    print(f"         GetOperation / hello-world = {g['throughput_rps'] / h['throughput_rps']:.0%}")
print(f"open loop 5000/s: {line(load('getop_open'))}")
print(f"realistic mix:    {line(load('mix'))}")
PY

bench_cleanup
redis-cli -h 127.0.0.1 --scan --pattern "$PREFIX*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
drop_database "$DB"
rm -rf "$BENCH_ROOT"
