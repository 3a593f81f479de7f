#!/usr/bin/env bash
# GetOperation against its ceiling, and the request mix (issues 7 and 24, BENCHMARKS.md).
#
#   scripts/bench-getoperation.sh [ROUNDS]        (default: 3)
#
# One run: a fresh database (fo_bench_getop), `fileorg serve` (release build,
# Redis on with its own key prefix, rate limits raised, Prometheus metrics on
# as deployed) and the bare tonic hello-world server (`fileorg loadtest
# --serve-hello-world`, the ceiling), both on loopback. Then, ROUNDS times and
# interleaved so both see the same machine, 100 connections for 10 s each:
#   - the project's load test: 100 closed-loop clients of GetOperation against
#     the server, the same against hello-world;
#   - h2load (Debian's nghttp2-client, installed by scripts/setup-tools.sh), an
#     outside HTTP/2 load generator: `h2load -c 100 -m $STREAMS` (default 1
#     stream per connection) POSTing one gRPC request body from a file (the
#     5-byte gRPC frame header and the serialized GetOperationRequest) with the
#     load test user's bearer token, against the server, then hello-world with
#     its own body. h2load counts HTTP 200s, which a refused gRPC call is too:
#     every round also reads the server's own count of GetOperation calls by
#     code (api_requests_total on /metrics) and fails unless every call of the
#     round was answered OK, at least as many as h2load counted, but for the
#     calls in flight that h2load resets when it stops (CANCELLED); the same body
#     is first sent once with curl to each target and must end with
#     grpc-status 0.
# Then GetOperation open loop at 5,000 requests/s, and 10 s of the realistic mix
# from 100 clients. Each load test writes its JSON report to
# data/reports/bench_<what>.json, each h2load run its per-request log next to
# it; the summary gives throughput, the ratio to the ceiling, p50/p95/p99,
# errors, and the load average. Everything else is removed at the end.
#
# Environment: STREAMS (h2load -m, default 1), H2LOAD_THREADS (h2load -t,
# default 1), DURATION (seconds per run, default 10), SKIP_EXTRA=1 leaves out
# the open loop and the mix.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

ROUNDS="${1:-3}"
ADDR=127.0.0.1:50151
HELLO=127.0.0.1:50152
METRICS=127.0.0.1:50153
DB=fo_bench_getop
PREFIX="fo-bench-$$:"
STREAMS="${STREAMS:-1}"
H2LOAD_THREADS="${H2LOAD_THREADS:-1}"
DURATION="${DURATION:-10}"
GET_OPERATION=/fileorganizer.v1.OperationService/GetOperation
# What the load test asks hello-world for (src/cli/loadtest/hello.rs, OPERATION).
HELLO_OPERATION=operations/00000000-0000-4000-8000-000000000000
REPORTS=data/reports
export DATA_DIR="$BENCH_ROOT/data" STORAGE_ROOT="$BENCH_ROOT/storage"

"$ROOT/scripts/setup-tools.sh" >/dev/null
H2LOAD="${H2LOAD:-$(command -v h2load || true)}"
[ -x "$H2LOAD" ] || { echo "h2load not found: run scripts/setup-tools.sh (as root)" >&2; exit 1; }

ensure_services
release_build
rm -rf "$BENCH_ROOT"
fresh_database "$DB"
start_server "$ADDR" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$PREFIX" METRICS_ADDR="$METRICS"
start_hello_world "$HELLO"
mkdir -p "$REPORTS" "$BENCH_ROOT/h2load"
rm -f "$REPORTS"/bench_getop_*.json "$REPORTS"/bench_hello_*.json "$REPORTS"/bench_h2load_*

run() {
    local name="$1"; shift
    say "$name"
    "$FILEORG" loadtest "$@" --concurrent 100 --report --report-path "$REPORTS/bench_$name.json"
}

# body FILE NAME: a gRPC request body: flag 0, the 4-byte big-endian length,
# then GetOperationRequest { name = NAME } (field 1, length-delimited).
body() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
name = sys.argv[2].encode()
assert len(name) < 128
message = b"\x0a" + bytes([len(name)]) + name
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
PY
}

# answered: GetOperation calls the server answered so far (its /metrics): "OK CANCELLED other".
# CANCELLED: h2load ends its duration with up to 100 calls in flight and resets them.
answered() {
    curl -sf "http://$METRICS/metrics" | awk -v m="$GET_OPERATION" '
        $1 ~ /^api_requests_total\{/ && index($1, "method=\"" m "\"") {
            if (index($1, "code=\"OK\"")) ok += $2
            else if (index($1, "code=\"CANCELLED\"")) cancelled += $2
            else other += $2 }
        END { printf "%d %d %d\n", ok, cancelled, other }'
}

# grpc_ok ADDR BODY AUTH: one call with curl; fails unless its trailers say grpc-status 0.
grpc_ok() {
    local headers="$BENCH_ROOT/h2load/curl.headers"
    curl -sS --http2-prior-knowledge -o /dev/null -D "$headers" -H "content-type: application/grpc" \
        -H "te: trailers" -H "authorization: $3" --data-binary "@$2" "http://$1$GET_OPERATION"
    if ! grep -qi '^grpc-status: *0' "$headers"; then
        echo "GetOperation on $1 with $2 was not OK:" >&2
        cat "$headers" >&2
        exit 1
    fi
}

# h2load_run NAME ADDR BODY AUTH: one h2load run; its output and per-request log under $REPORTS.
h2load_run() {
    local name="$1" addr="$2" body="$3" auth="$4"
    say "h2load $name"
    "$H2LOAD" -c 100 -m "$STREAMS" -t "$H2LOAD_THREADS" -D "$DURATION" --warm-up-time 1 \
        -d "$body" -H "content-type: application/grpc" -H "te: trailers" -H "authorization: $auth" \
        --log-file "$REPORTS/bench_h2load_$name.log" "http://$addr$GET_OPERATION" \
        | tee "$REPORTS/bench_h2load_$name.txt" | grep -E '^(finished in|requests:|status codes:)'
    cut -d' ' -f1-3 /proc/loadavg >"$REPORTS/bench_h2load_$name.loadavg"
}

SESSION="$BENCH_ROOT/h2load/session.json"
for round in $(seq 1 "$ROUNDS"); do
    # The first round's test user and operation are h2load's too.
    session=()
    [ "$round" = 1 ] && session=(--session-file "$SESSION")
    run "getop_$round" --addr "$ADDR" --mix get-operation --duration "$DURATION" --server-pid "$SERVER_PID" "${session[@]}"
    run "hello_$round" --addr "$HELLO" --hello-world --mix get-operation --duration "$DURATION" --server-pid "$HELLO_PID"
    if [ "$round" = 1 ]; then
        read -r TOKEN OPERATION < <(python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["access_token"], s["operation"])' "$SESSION")
        body "$BENCH_ROOT/h2load/getop.body" "$OPERATION"
        body "$BENCH_ROOT/h2load/hello.body" "$HELLO_OPERATION"
        grpc_ok "$ADDR" "$BENCH_ROOT/h2load/getop.body" "Bearer $TOKEN"
        grpc_ok "$HELLO" "$BENCH_ROOT/h2load/hello.body" "Bearer $TOKEN"
    fi
    read -r ok0 cancelled0 other0 < <(answered)
    h2load_run "getop_$round" "$ADDR" "$BENCH_ROOT/h2load/getop.body" "Bearer $TOKEN"
    read -r ok1 cancelled1 other1 < <(answered)
    echo "$((ok1 - ok0)) $((cancelled1 - cancelled0)) $((other1 - other0))" >"$REPORTS/bench_h2load_getop_$round.server"
    h2load_run "hello_$round" "$HELLO" "$BENCH_ROOT/h2load/hello.body" "Bearer $TOKEN"
done
if [ "${SKIP_EXTRA:-0}" != 1 ]; then
    run getop_open --addr "$ADDR" --mix get-operation --duration 10 --rate 5000 --server-pid "$SERVER_PID"
    run mix --addr "$ADDR" --duration 10 --server-pid "$SERVER_PID"
fi

say "summary"
python3 - "$ROUNDS" "$REPORTS" "$STREAMS" "${SKIP_EXTRA:-0}" <<'PY'
import json, re, sys
rounds, reports, streams, skip_extra = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
load = lambda name: json.load(open(f"{reports}/bench_{name}.json"))["load"]

def line(l):
    s = l["server"]
    us = s.get("avg_cpu_percent", 0) / 100 * l["duration_seconds"] / max(l["total_requests"], 1) * 1e6
    return (f"{l['throughput_rps']:>8.0f} req/s  p50 {l['latency_ms']['p50_ms']:.2f}  "
            f"p95 {l['latency_ms']['p95_ms']:.2f}  p99 {l['latency_ms']['p99_ms']:.2f} ms  "
            f"{l['failed_requests']} failed  server {us:.0f} µs CPU/request")

def h2load(name):
    text = open(f"{reports}/bench_h2load_{name}.txt").read()
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1))
    total, succeeded, failed, errored = map(int, re.search(
        r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", text).groups())
    # The log: start (µs since the epoch), HTTP status, µs until the response ended.
    durations = sorted(int(l.split("\t")[2]) for l in open(f"{reports}/bench_h2load_{name}.log") if l.strip())
    pct = lambda p: durations[min(len(durations) - 1, int(p / 100 * len(durations)))] / 1000 if durations else float("nan")
    loadavg = open(f"{reports}/bench_h2load_{name}.loadavg").read().strip()
    return dict(rps=rps, total=total, succeeded=succeeded, failed=failed + errored,
                p50=pct(50), p95=pct(95), p99=pct(99), loadavg=loadavg)

def h2line(h):
    return (f"{h['rps']:>8.0f} req/s  p50 {h['p50']:.2f}  p95 {h['p95']:.2f}  p99 {h['p99']:.2f} ms  "
            f"{h['failed']} failed  (load average {h['loadavg']})")

bad = []
for r in range(1, rounds + 1):
    g, h = load(f"getop_{r}"), load(f"hello_{r}")
    print(f"round {r}, fileorg loadtest: GetOperation {line(g)}")
    print(f"                              hello-world  {line(h)}")
    print(f"                              GetOperation / hello-world = {g['throughput_rps'] / h['throughput_rps']:.0%}")
    hg, hh = h2load(f"getop_{r}"), h2load(f"hello_{r}")
    server_ok, server_cancelled, server_other = map(int, open(f"{reports}/bench_h2load_getop_{r}.server").read().split())
    print(f"         h2load -m {streams}:        GetOperation {h2line(hg)}")
    print(f"                              hello-world  {h2line(hh)}")
    print(f"                              GetOperation / hello-world = {hg['rps'] / hh['rps']:.0%}; "
          f"the server answered {server_ok} OK, {server_cancelled} CANCELLED, {server_other} other "
          f"(h2load: {hg['succeeded']} HTTP 200 after its warm-up second)")
    # The server's counts include h2load's warm-up second, h2load's do not.
    # CANCELLED: the calls in flight when h2load stopped (at most one per connection and stream).
    if server_other or server_cancelled > 100 * int(streams) or server_ok < hg["succeeded"] \
            or hg["failed"] or hh["failed"]:
        bad.append(r)
if not skip_extra:
    print(f"open loop 5000/s: {line(load('getop_open'))}")
    print(f"realistic mix:    {line(load('mix'))}")
if bad:
    sys.exit(f"rounds {bad}: h2load saw failures, or the server answered calls other than OK")
PY

bench_cleanup
redis-cli -h 127.0.0.1 --scan --pattern "$PREFIX*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
drop_database "$DB"
rm -rf "$BENCH_ROOT"
