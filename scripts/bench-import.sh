#!/usr/bin/env bash
# Importing an archive through the API against extracting it with `tar -x` / `unzip` on the
# same disk (issue 20, BENCHMARKS.md), side by side in one run:
#
#   scripts/bench-import.sh [FILES] [TOTAL_MIB] [RUNS]     (defaults: 10000 files, 50 MiB, 3 runs)
#
# One tree of FILES files, TOTAL_MIB in all, is generated under $BENCH_ROOT/import (seeded, so
# every invocation makes the same one): sizes log-normal (most files a few KiB, a few of
# several MiB), 60 % text (compressible), 40 % random bytes (photos, PDFs, archives), in about
# 200 folders up to four levels deep. It is packed once as a plain tar (`tar -c`) and as a zip
# (`zip -r`: deflate, random files stored). Then, for each format, RUNS times, each after a
# `sync` with the archive in the page cache, in turn (which goes first rotates from run to run):
#   local    `tar -xf` / `unzip -q` into an empty folder on the same filesystem as the server's
#            STORAGE_ROOT; printed alone and with `sync -f` after it (a syncfs: the import makes
#            its files durable with syncfs before it answers, so the second is like for like);
#   rest     `curl --data-binary @ARCHIVE -X POST …/api/v1/files:import?path=…` through a real
#            Envoy (the sidecar's envoy/envoy.yaml) to a release `fileorg serve`;
#   grpc     the Python SDK's `Client.import_archive` straight to the server (gRPC, 1 MiB chunks).
# Every import's answer must say FILES files stored and none skipped, and every imported tree
# is compared with tar's (`diff -r`); all are removed at the end (not between runs: see below).
# The summary prints the median of the runs of each, the ratio API time / local time (issue
# 20's target: at most 2.0, i.e. at least half the speed), and the server's peak RSS (VmHWM from /proc: after start-up, and over its
# whole life, every import included; target < 200 MB) and Envoy's.
# Loopback only; everything started is stopped. RELEASE_TARGET picks the release build's
# target directory (scripts/bench-lib.sh); SKIP_BUILD=1 uses the binary already there.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

FILES="${1:-10000}"
TOTAL_MIB="${2:-50}"
RUNS="${3:-3}"
DIR="$BENCH_ROOT/import"
TREE="$DIR/tree"
ADDR="127.0.0.1:50072"
ENVOY_PORT=58072
ENVOY_ADMIN=59072
# The upload byte budget per window (RATE_LIMIT_UPLOAD_BYTES, when the server has it) would
# refuse a benchmark that imports the same archive again and again.
export RATE_LIMIT_UPLOAD_BYTES="${RATE_LIMIT_UPLOAD_BYTES:-1099511627776}"

ensure_services
ensure_tools
release_build
rm -rf "$DIR"
mkdir -p "$DIR/storage" "$DIR/data" "$DIR/local"

say "generating $FILES files, $TOTAL_MIB MiB, under $TREE"
python3 - "$TREE/bench-archive" "$FILES" "$TOTAL_MIB" <<'PY'
import os, random, sys
root, files, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) * 1024 * 1024
rng = random.Random(20)
folders = [""]
for i in range(200):
    parent = rng.choice([f for f in folders if f.count("/") < 3])
    folders.append(f"{parent}/{rng.choice(['photos', 'docs', 'src', 'music', 'misc'])}-{i}".lstrip("/"))
raw = [rng.lognormvariate(8.0, 1.6) for _ in range(files)]
scale = total / sum(raw)
sizes = [max(1, int(s * scale)) for s in raw]
words = b"invoice report the of and data folder file organize budget summary notes 2026 ".split()
text_exts, binary_exts = ["txt", "md", "csv", "json", "rs", "html"], ["jpg", "png", "pdf", "mp3", "zip"]
for n, size in enumerate(sizes):
    folder = os.path.join(root, rng.choice(folders))
    os.makedirs(folder, exist_ok=True)
    if rng.random() < 0.6:
        line = b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
        data = (line * (size // len(line) + 1))[:size]
        ext = rng.choice(text_exts)
    else:
        data = rng.randbytes(size)
        ext = rng.choice(binary_exts)
    with open(os.path.join(folder, f"file-{n:05}.{ext}"), "wb") as f:
        f.write(data)
print(f"{files} files, {sum(sizes)} bytes, largest {max(sizes)}, median {sorted(sizes)[files // 2]}")
PY
tar -C "$TREE" -cf "$DIR/archive.tar" bench-archive
(cd "$TREE" && zip -qr "$DIR/archive.zip" bench-archive)
ls -l "$DIR/archive.tar" "$DIR/archive.zip"

fresh_database fo_bench_import
export DATA_DIR="$DIR/data" STORAGE_ROOT="$DIR/storage" WORKERS=0
start_server "$ADDR" TRUSTED_PROXIES=127.0.0.2
start_rss="$(rss_mib "$SERVER_PID" VmHWM)"
start_envoy "$DIR" "$ENVOY_PORT" "$ENVOY_ADMIN" 72
register_user

now() { date +%s.%N; }
# settle ARCHIVE: before each timed step, the last one's writes are written back (sync) and the
# archive is in the page cache (as a file just downloaded would be). The page cache is not
# dropped: on a machine shared with other work that makes every tool reload itself and
# others' files, which costs a freshly started `tar` more than the running server.
settle() {
    sync
    cat "$1" >/dev/null
}
# check_answer JSON_FILE: the import stored every file and skipped none.
check_answer() {
    python3 - "$1" "$FILES" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
files = int(r.get("file_count", r.get("fileCount", 0)))
skipped = int(r.get("skipped_count", r.get("skippedCount", 0)))
if files != int(sys.argv[2]) or skipped:
    sys.exit(f"the import stored {files} files and skipped {skipped}: {r}")
PY
}

RESULTS="$DIR/results.txt"
: >"$RESULTS"
# One timed step each: extract FORMAT RUN, rest FORMAT RUN, grpc FORMAT RUN (results to $RESULTS).
extract() {
    local archive="$DIR/archive.$1" dest="$DIR/local/$1-$2" t0 t1 t2
    mkdir -p "$dest"
    settle "$archive"
    t0="$(now)"
    if [ "$1" = tar ]; then tar -C "$dest" -xf "$archive"; else unzip -q "$archive" -d "$dest"; fi
    t1="$(now)"
    sync -f "$dest"
    t2="$(now)"
    echo "$1 local $(echo "$t1 - $t0" | bc -l)" >>"$RESULTS"
    echo "$1 local+sync $(echo "$t2 - $t0" | bc -l)" >>"$RESULTS"
}
rest() {
    local archive="$DIR/archive.$1" t0 t1
    settle "$archive"
    t0="$(now)"
    curl -sf -o "$DIR/answer.json" --data-binary "@$archive" -X POST \
        -H "authorization: Bearer $TOKEN" "$API/api/v1/files:import?path=rest-$1-$2"
    t1="$(now)"
    check_answer "$DIR/answer.json"
    echo "$1 rest $(echo "$t1 - $t0" | bc -l)" >>"$RESULTS"
}
grpc() {
    # The client logs in and settles first; only the import is timed.
    cat "$DIR/archive.$1" >/dev/null
    PYTHONPATH=sdk/python/src "$FILEORG_PYTHON" - "$ADDR" "$EMAIL" "$PASSWORD" "$DIR/archive.$1" \
        "grpc-$1-$2" >"$DIR/answer.json" <<'PY'
import json, os, sys, time
import fileorganizer
from google.protobuf.json_format import MessageToDict
addr, email, password, archive, target = sys.argv[1:]
with fileorganizer.Client(addr) as c:
    c.login(email, password)
    os.sync()
    t0 = time.perf_counter()
    r = c.import_archive(archive, target, conflict_policy="FAIL")
    seconds = time.perf_counter() - t0
print(json.dumps(dict(MessageToDict(r.pb, preserving_proto_field_name=True), seconds=seconds)))
PY
    check_answer "$DIR/answer.json"
    echo "$1 grpc $(python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])' <"$DIR/answer.json")" >>"$RESULTS"
}

# Nothing is removed until every run is done: ext4 allocates a new inode past the ones freed in
# the last minutes (perf: `__ext4_new_inode` -> `find_inode_bit` -> `recently_deleted`), so
# removing 10,000 files slows whoever creates files next, seconds per 10,000 here. Which of the
# three goes first rotates from run to run.
order=(extract rest grpc)
for run in $(seq 1 "$RUNS"); do
    for format in tar zip; do
        for step in "${order[@]}"; do "$step" "$format" "$run"; done
        for via in rest grpc; do diff -r "$DIR/local/$format-$run" "$DIR/storage/$USER_ID/$via-$format-$run"; done
        grep "^$format " "$RESULTS" | tail -n 4 | awk -v run="$run" '{ printf "run %s: %s %s %.2f s\n", run, $1, $2, $3 }'
    done
    order=("${order[@]:1}" "${order[0]}")
done

say "median of $RUNS runs: $FILES files, $TOTAL_MIB MiB"
python3 - "$RESULTS" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    fmt, what, seconds = line.split()
    times.setdefault((fmt, what), []).append(float(seconds))
med = {k: statistics.median(v) for k, v in times.items()}
tool = {"tar": "tar -xf", "zip": "unzip -q"}
for fmt in ("tar", "zip"):
    runs = lambda what: " / ".join(f"{s:.2f}" for s in times[(fmt, what)])
    local, synced = med[(fmt, "local")], med[(fmt, "local+sync")]
    print(f"{fmt}: {tool[fmt]} {local:.2f} s ({runs('local')}), with sync -f {synced:.2f} s ({runs('local+sync')})")
    for via, label in (("rest", "REST through Envoy"), ("grpc", "gRPC (Python SDK)")):
        t = med[(fmt, via)]
        print(f"  {label}: {t:.2f} s ({runs(via)}) = {t / local:.2f}x {tool[fmt]}, "
              f"{t / synced:.2f}x {tool[fmt]} + sync -f")
PY
server_hwm="$(rss_mib "$SERVER_PID" VmHWM)" server_rss="$(rss_mib "$SERVER_PID" VmRSS)"
envoy_hwm="$(rss_mib "$ENVOY_PID" VmHWM)"
bench_cleanup
printf 'peak RSS: server %s MiB after start-up, %s MiB over all imports (now %s MiB); Envoy %s MiB\n' \
    "$start_rss" "$server_hwm" "$server_rss" "$envoy_hwm"
drop_database fo_bench_import
if [ "${KEEP:-0}" != 1 ]; then rm -rf "$DIR"; fi
