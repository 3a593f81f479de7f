#!/usr/bin/env bash
# DownloadArchive through Envoy against `tar -c` and `zip -r` of the same folder on the same
# disk (issue 20 item 5, BENCHMARKS.md), in one run:
#
#   scripts/bench-export.sh [FILES] [RUNS]     (defaults: 10000 files, 3 runs)
#
# A folder of FILES files (about 5 KiB each, half text, half random bytes; 100 subfolders,
# ~50 MB for 10,000) is made under the server's STORAGE_ROOT in $BENCH_ROOT/export. Each run,
# from a dropped page cache:
#   tar      `tar -cf OUT -C PARENT tree`;
#   export   `curl -o OUT …/api/v1/files:downloadArchive?path=tree&format=ARCHIVE_FORMAT_TAR`
#            through a real Envoy (envoy/envoy.yaml) to a release `fileorg serve`;
#   zip      `zip -qr OUT tree` (deflate level 6, as the server's);
#   export   the same download as a zip.
# Each archive is checked (entry count by `tar -tf` and Python's zipfile, which also checks
# every CRC-32) and removed. The server's peak RSS (VmHWM, over its whole life) is printed at
# the end. Best of RUNS for each. Loopback only; everything started is stopped.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

FILES="${1:-10000}"
RUNS="${2:-3}"
DIR="$BENCH_ROOT/export"
ADDR="127.0.0.1:50072"
ENVOY_PORT=58072
ENVOY_ADMIN=59072

ensure_services
ensure_tools
release_build
rm -rf "$DIR"
mkdir -p "$DIR/storage" "$DIR/data" "$DIR/out"

fresh_database fo_bench_export
export DATA_DIR="$DIR/data" STORAGE_ROOT="$DIR/storage" WORKERS=0
start_server "$ADDR" TRUSTED_PROXIES=127.0.0.2
start_envoy "$DIR" "$ENVOY_PORT" "$ENVOY_ADMIN" 72
register_user
PARENT="$DIR/storage/$USER_ID"

say "making $FILES files under $PARENT/tree"
python3 - "$PARENT/tree" "$FILES" <<'EOF'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = [b"alpha", b"beta", b"gamma", b"delta", b"file", b"organize", b"photo", b"report"]
for i in range(count):
    folder = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(folder, exist_ok=True)
    if i % 2:
        body = os.urandom(rng.randint(3000, 7000))
        name = f"f{i:05d}.bin"
    else:
        body = b" ".join(rng.choice(words) for _ in range(rng.randint(400, 900)))
        name = f"f{i:05d}.txt"
    with open(os.path.join(folder, name), "wb") as f:
        f.write(body)
EOF
MB="$(du -sm "$PARENT/tree" | cut -f1)"

now() { date +%s.%N; }
count_tar() { tar -tf "$1" | grep -vc '/$'; }
count_zip() {
    python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None
print(sum(1 for n in z.namelist() if not n.endswith("/")))' "$1"
}
# timed NAME COMMAND...: runs it from a dropped page cache; sets ELAPSED.
timed() {
    drop_page_cache
    local t0 t1
    t0="$(now)"
    "$@"
    t1="$(now)"
    ELAPSED="$(echo "$t1 - $t0" | bc -l)"
}
declare -A best
keep_best() {
    if [ -z "${best[$1]:-}" ] || [ "$(echo "$2 < ${best[$1]}" | bc)" = 1 ]; then best[$1]="$2"; fi
}
download() {
    curl -sf -o "$2" -H "authorization: Bearer $TOKEN" \
        "$API/api/v1/files:downloadArchive?path=tree&format=$1"
}

for run in $(seq 1 "$RUNS"); do
    timed tar -cf "$DIR/out/tar.tar" -C "$PARENT" tree
    [ "$(count_tar "$DIR/out/tar.tar")" = "$FILES" ]
    keep_best tar "$ELAPSED"; t_tar="$ELAPSED"
    timed download ARCHIVE_FORMAT_TAR "$DIR/out/export.tar"
    [ "$(count_tar "$DIR/out/export.tar")" = "$FILES" ]
    keep_best export_tar "$ELAPSED"; t_etar="$ELAPSED"
    timed bash -c "cd '$PARENT' && zip -qr '$DIR/out/zip.zip' tree"
    [ "$(count_zip "$DIR/out/zip.zip")" = "$FILES" ]
    keep_best zip "$ELAPSED"; t_zip="$ELAPSED"
    timed download ARCHIVE_FORMAT_ZIP "$DIR/out/export.zip"
    [ "$(count_zip "$DIR/out/export.zip")" = "$FILES" ]
    keep_best export_zip "$ELAPSED"; t_ezip="$ELAPSED"
    printf 'run %s: tar -c %5.2f s, export tar %5.2f s, zip -r %5.2f s, export zip %5.2f s\n' \
        "$run" "$t_tar" "$t_etar" "$t_zip" "$t_ezip"
    sizes="tar $(stat -c %s "$DIR/out/tar.tar"), export tar $(stat -c %s "$DIR/out/export.tar"),"
    sizes+=" zip $(stat -c %s "$DIR/out/zip.zip"), export zip $(stat -c %s "$DIR/out/export.zip") bytes"
    rm -f "$DIR"/out/*
done

say "best of $RUNS, $FILES files, $MB MB on disk"
printf 'tar -c %5.2f s; DownloadArchive tar through Envoy %5.2f s (%.2f of tar)\n' \
    "${best[tar]}" "${best[export_tar]}" "$(echo "${best[tar]} / ${best[export_tar]}" | bc -l)"
printf 'zip -r %5.2f s; DownloadArchive zip through Envoy %5.2f s (%.2f of zip)\n' \
    "${best[zip]}" "${best[export_zip]}" "$(echo "${best[zip]} / ${best[export_zip]}" | bc -l)"
printf 'sizes (last run): %s\n' "$sizes"
printf 'peak RSS: server %s MiB, Envoy %s MiB\n' "$(rss_mib "$SERVER_PID" VmHWM)" "$(rss_mib "$ENVOY_PID" VmHWM)"
drop_database fo_bench_export
