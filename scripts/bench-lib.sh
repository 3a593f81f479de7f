# Shared by the benchmark scripts (scripts/bench-*.sh):
# a release build, a server with the rate limits raised, fresh databases.
# Loopback only; every server started here is stopped on exit.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The same cargo target as scripts/run-stack.sh (lib.sh's CARGO_TARGET_DIR), so the stack and the
# benchmarks share one release build instead of compiling it twice.
RELEASE_TARGET="${RELEASE_TARGET:-$CARGO_TARGET_DIR}"
# FILEORG_BIN=PATH runs that binary instead of building one (to compare two
# builds side by side in one run). Only the caller's: lib.sh sets FILEORG_BIN to the debug build
# when the caller did not, which a benchmark must never run by accident.
if [ -n "$FILEORG_BIN_FROM_CALLER" ]; then
    FILEORG="$FILEORG_BIN"
else
    FILEORG="$RELEASE_TARGET/release/fileorg"
fi
BENCH_ROOT="${BENCH_ROOT:-/tmp/fo-bench}"
PG_BASE="postgres://postgres@127.0.0.1:5432"
export RUST_LOG="${RUST_LOG:-warn}"
# The defaults (RATE_LIMIT_API=100 per minute …) refuse a load test;
# 10000000 is the most the configuration accepts (1000000 for the per-second burst).
export RATE_LIMIT_API=10000000 RATE_LIMIT_GLOBAL_API=10000000 RATE_LIMIT_UPLOAD=10000000 \
    RATE_LIMIT_EXPORT=10000000 RATE_LIMIT_GLOBAL_TRANSFER=10000000 RATE_LIMIT_LOGIN_PER_IP=10000000 \
    RATE_LIMIT_LOGIN_PER_EMAIL=10000000 RATE_LIMIT_AUTH_FAILURES_PER_IP=10000000 \
    RATE_LIMIT_BURST=10000000 RATE_LIMIT_BURST_PER_SECOND=1000000

BENCH_PIDS=()
bench_cleanup() {
    for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    BENCH_PIDS=()
}
trap bench_cleanup EXIT

# release_build: builds the release binary, unless FILEORG_BIN names one or SKIP_BUILD=1 says
# $RELEASE_TARGET already has it.
release_build() {
    if [ -n "$FILEORG_BIN_FROM_CALLER" ]; then
        say "no build: $FILEORG"
        return
    fi
    if [ -n "${SKIP_BUILD:-}" ]; then
        say "no build (SKIP_BUILD): $FILEORG"
        return
    fi
    say "release build ($RELEASE_TARGET)"
    CARGO_TARGET_DIR="$RELEASE_TARGET" cargo build --release --quiet
}

# require_free_space DIR KIB: exits unless the filesystem of DIR (made if missing) has KIB free.
require_free_space() {
    local dir="$1" need_kib="$2" free_kib
    mkdir -p "$dir"
    free_kib="$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')"
    if [ "$free_kib" -lt "$need_kib" ]; then
        echo "$((free_kib / 1024 / 1024)) GiB free under $dir; this run needs about $((need_kib / 1024 / 1024)) GiB" >&2
        exit 1
    fi
}

# fresh_database NAME: drops and recreates it, migrated; exports DATABASE_URL.
fresh_database() {
    psql -X -q -d "$PG_BASE/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
    export DATABASE_URL="$PG_BASE/$1"
    "$FILEORG" migrate >/dev/null
}

drop_database() {
    psql -X -q -d "$PG_BASE/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
}

# drop_page_cache: writes back and drops the page cache (as root), so each run
# starts alike; the generated tree is then read back into it as it is written.
drop_page_cache() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

# start_server ADDR [ENV=VALUE ...]: `fileorg serve` on ADDR in the background
# with the current DATABASE_URL, DATA_DIR and STORAGE_ROOT; sets SERVER_PID
# (and SERVER_ADDR) and waits until it accepts connections.
start_server() {
    local addr="$1"; shift
    env GRPC_ADDR="$addr" "$@" "$FILEORG" serve &
    SERVER_PID=$!
    SERVER_ADDR="$addr"
    BENCH_PIDS+=("$SERVER_PID")
    wait_for_port "$addr"
}

# start_hello_world ADDR: the bare tonic ceiling; sets HELLO_PID.
start_hello_world() {
    "$FILEORG" loadtest --serve-hello-world "$1" >/dev/null &
    HELLO_PID=$!
    BENCH_PIDS+=("$HELLO_PID")
    wait_for_port "$1"
}

wait_for_port() {
    local host="${1%:*}" port="${1##*:}"
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}

stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# pg_stat_statements_state: "loaded" when the local server preloads it.
pg_stat_statements_state() {
    psql -X -qAt -d "$PG_BASE/postgres" -c "SHOW shared_preload_libraries" | grep -q pg_stat_statements \
        && echo loaded || echo "not loaded"
}

# start_envoy DIR ENVOY_PORT ADMIN_PORT BASE_ID: a real Envoy (envoy/envoy.yaml, with the
# descriptor of $FILEORG) in front of the server on $SERVER_ADDR, with its files in DIR; sets
# ENVOY_PID and API (its base URL) and waits until it listens.
start_envoy() {
    local dir="$1" port="$2" admin="$3" base_id="$4"
    "$FILEORG" descriptor --out "$dir/fileorganizer.pb"
    sed -e "s#envoy/fileorganizer.pb#$dir/fileorganizer.pb#" -e "s/50051/${SERVER_ADDR##*:}/" \
        -e "s/9901/$admin/" -e "s/8080/$port/" envoy/envoy.yaml >"$dir/envoy.yaml"
    scripts/envoy.sh -c "$dir/envoy.yaml" --base-id "$base_id" --log-level warn >"$dir/envoy.log" 2>&1 &
    ENVOY_PID=$!
    BENCH_PIDS+=("$ENVOY_PID")
    wait_for_port "127.0.0.1:$port"
    API="http://127.0.0.1:$port"
}

# register_user: a new user through $API; sets EMAIL, PASSWORD, TOKEN and USER_ID.
register_user() {
    EMAIL="bench-$(date +%s%N)@example.com"
    PASSWORD="correct horse battery"
    TOKEN="$(curl -sf -X POST "$API/api/v1/auth/register" \
        -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    # shellcheck disable=SC2034  # read by the scripts that source this one
    USER_ID="$(curl -sf "$API/api/v1/users/me" -H "authorization: Bearer $TOKEN" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
}

# rss_mib PID KEY: VmHWM (peak) or VmRSS of PID in MiB, from /proc.
rss_mib() { awk -v key="$2:" '$1 == key { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# sample_rss_by_phase PID DATABASE_URL OUT: every 0.2 s, the VmRSS (MiB) of PID
# and the phase of the newest operation in that database, one line each
# ("phase rss"), until PID exits or the caller kills it; sets SAMPLER_PID.
sample_rss_by_phase() {
    local pid="$1" url="$2" out="$3"
    (
        while [ -e "/proc/$pid/status" ]; do
            phase="$(psql -X -qAt -d "$url" -c \
                "SELECT coalesce(phase, state::text) FROM operations ORDER BY created_at DESC LIMIT 1" \
                2>/dev/null || true)"
            echo "${phase:-none} $(rss_mib "$pid" VmRSS)"
            sleep 0.2
        done
    ) >"$out" &
    SAMPLER_PID=$!
    BENCH_PIDS+=("$SAMPLER_PID")
}

# rss_by_phase FILE: the highest VmRSS (MiB) sampled in each phase, in order.
rss_by_phase() {
    awk '{ if (!($1 in max)) order[n++] = $1; if ($2 > max[$1]) max[$1] = $2 }
         END { for (i = 0; i < n; i++) printf "%s %d MiB; ", order[i], max[order[i]]; print "" }' "$1"
}
