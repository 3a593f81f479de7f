#!/usr/bin/env bash
# A raw-body REST upload through Envoy against `cp` of the same file on the same disk (issue 20,
# BENCHMARKS.md), in one run:
#
#   scripts/bench-raw-upload.sh [SIZE_MIB] [RUNS]     (defaults: 1024 MiB, 3 runs)
#
# One file of SIZE_MIB random bytes is written under $BENCH_ROOT/raw-upload (the same
# filesystem as the server's STORAGE_ROOT there). Each run, alternately:
#   cp       `cp SRC DST` then `sync DST` (the upload fsyncs its file before publishing it, so
#            cp's number includes the same flush; cp alone is printed too);
#   upload   `curl -T SRC -X POST …/api/v1/files:upload?path=…` through a real Envoy (the
#            sidecar's envoy/envoy.yaml) to a release `fileorg serve`: streamed into the
#            UploadRawFile client stream, written to a temp file, fsynced, published.
# Every copy is checked byte for byte (cmp) and removed before the next run. The server's peak
# RSS (VmHWM from /proc, over its whole life, start-up and every run included) is printed at
# the end with Envoy's. Best of RUNS for each. Loopback only; everything started is stopped.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

SIZE_MIB="${1:-1024}"
RUNS="${2:-3}"
DIR="$BENCH_ROOT/raw-upload"
SRC="$DIR/source.bin"
ADDR="127.0.0.1:50071"
ENVOY_PORT=58071
ENVOY_ADMIN=59071

ensure_services
ensure_tools
release_build
rm -rf "$DIR/storage" "$DIR/data" "$DIR/cp"
mkdir -p "$DIR/storage" "$DIR/data" "$DIR/cp"
if [ "$(stat -c %s "$SRC" 2>/dev/null || echo 0)" != "$((SIZE_MIB * 1024 * 1024))" ]; then
    say "writing $SIZE_MIB MiB of random bytes to $SRC"
    head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$SRC"
fi

fresh_database fo_bench_raw_upload
export DATA_DIR="$DIR/data" STORAGE_ROOT="$DIR/storage" WORKERS=0
# Three 1 GiB uploads within a minute are past the default upload byte budget
# (RATE_LIMIT_UPLOAD_BYTES, 2 GiB per window): this measures speed, not the limit.
start_server "$ADDR" TRUSTED_PROXIES=127.0.0.2 RATE_LIMIT_UPLOAD_BYTES=1099511627776
start_envoy "$DIR" "$ENVOY_PORT" "$ENVOY_ADMIN" 71
register_user

now() { date +%s.%N; }
mibs() { echo "$SIZE_MIB / $1" | bc -l; }

best_cp="" best_cp_alone="" best_upload=""
for run in $(seq 1 "$RUNS"); do
    drop_page_cache
    t0="$(now)"
    cp "$SRC" "$DIR/cp/copy.bin"
    t1="$(now)"
    sync "$DIR/cp/copy.bin"
    t2="$(now)"
    cmp "$SRC" "$DIR/cp/copy.bin"
    rm "$DIR/cp/copy.bin"
    cp_alone="$(echo "$t1 - $t0" | bc -l)" cp_synced="$(echo "$t2 - $t0" | bc -l)"

    drop_page_cache
    t0="$(now)"
    curl -sf -o "$DIR/response.json" -T "$SRC" -X POST -H "authorization: Bearer $TOKEN" \
        -H "content-type: application/octet-stream" "$API/api/v1/files:upload?path=bench/run-$run.bin"
    t1="$(now)"
    stored="$DIR/storage/$USER_ID/bench/run-$run.bin"
    cmp "$SRC" "$stored"
    rm "$stored"
    upload="$(echo "$t1 - $t0" | bc -l)"

    printf 'run %s: cp %6.2f s (%4.0f MiB/s; without sync %6.2f s), upload %6.2f s (%4.0f MiB/s)\n' \
        "$run" "$cp_synced" "$(mibs "$cp_synced")" "$cp_alone" "$upload" "$(mibs "$upload")"
    if [ -z "$best_cp" ] || [ "$(echo "$cp_synced < $best_cp" | bc)" = 1 ]; then best_cp="$cp_synced"; fi
    if [ -z "$best_cp_alone" ] || [ "$(echo "$cp_alone < $best_cp_alone" | bc)" = 1 ]; then best_cp_alone="$cp_alone"; fi
    if [ -z "$best_upload" ] || [ "$(echo "$upload < $best_upload" | bc)" = 1 ]; then best_upload="$upload"; fi
done

say "best of $RUNS, $SIZE_MIB MiB"
printf 'cp + sync: %6.2f s = %4.0f MiB/s (cp alone %6.2f s = %4.0f MiB/s)\n' \
    "$best_cp" "$(mibs "$best_cp")" "$best_cp_alone" "$(mibs "$best_cp_alone")"
printf 'raw upload through Envoy: %6.2f s = %4.0f MiB/s = %.2f of cp + sync, %.2f of cp alone\n' \
    "$best_upload" "$(mibs "$best_upload")" "$(echo "$best_cp / $best_upload" | bc -l)" \
    "$(echo "$best_cp_alone / $best_upload" | bc -l)"
printf 'peak RSS: server %s MiB, Envoy %s MiB\n' "$(rss_mib "$SERVER_PID" VmHWM)" "$(rss_mib "$ENVOY_PID" VmHWM)"
drop_database fo_bench_raw_upload
