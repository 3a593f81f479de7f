#!/usr/bin/env bash
# Runs the whole stack locally: builds `fileorg` (release profile) and the console, applies
# migrations, serves gRPC + grpc-web on GRPC_ADDR (127.0.0.1:50051) and REST through the Envoy
# sidecar on 127.0.0.1:8080, and the browser console (console/, built with vite) on
# CONSOLE_ADDR (127.0.0.1:8081), whose origin is allowed in CORS_ORIGINS by default.
# Ctrl-C stops both.
#
#   scripts/run-stack.sh              build what changed, then serve
#   scripts/run-stack.sh --no-build   serve what is already built (fails if something is missing)
#
# The release build lives in cargo's usual cache ($CARGO_TARGET_DIR, by default
# ~/.cache/fileorganizer/target, `release/`), so only the first start compiles everything
# (README: how long it takes). FILEORG_BIN=/path/to/fileorg serves that binary instead and
# builds no `fileorg`.
#
# Configuration comes from the environment (see the README's table); a `.env` file at the
# repository root is read first if present.
set -euo pipefail
BUILD=1
case "${1:-}" in
    "") ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
# The optimized build, unless the caller named a binary.
if [[ -z "$FILEORG_BIN_FROM_CALLER" ]]; then
    export FILEORG_BIN="$CARGO_TARGET_DIR/release/fileorg"
fi

if [[ -f .env ]]; then
    set -a; source .env; set +a
fi
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
# The console is served by fileorg serve itself and calls the API over grpc-web from its own
# origin, so that origin must be in CORS_ORIGINS (plus vite's dev server, `npm run dev -w console`).
export CONSOLE_ADDR="${CONSOLE_ADDR:-127.0.0.1:8081}"
export CONSOLE_DIR="${CONSOLE_DIR:-$ROOT/console/dist}"
# Envoy connects to the server from 127.0.0.2 (envoy/envoy.yaml); only that address may tell the
# server a client's address (docs/security.md). Direct clients on loopback come from 127.0.0.1.
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.2}"
export CORS_ORIGINS="${CORS_ORIGINS:-http://$CONSOLE_ADDR,http://localhost:${CONSOLE_ADDR##*:},http://localhost:5173}"

ensure_services
say "installing tools (Envoy, Python clients, buf) if needed"
ensure_tools
if ((BUILD)); then
    say "building the TypeScript SDK and the console (tsc, vite)"
    npm run build --silent
    if [[ -z "$FILEORG_BIN_FROM_CALLER" ]]; then
        say "building fileorg (release; the first build takes a while, later ones only what changed)"
        cargo build --release --bin fileorg
    fi
fi
[[ -x "$FILEORG_BIN" ]] || {
    echo "no fileorg binary at $FILEORG_BIN: run without --no-build, or set FILEORG_BIN" >&2
    exit 1
}
[[ -f "$CONSOLE_DIR/index.html" ]] || {
    echo "no console build in $CONSOLE_DIR: run without --no-build (npm run build)" >&2
    exit 1
}
say "applying migrations ($FILEORG_BIN)"
"$FILEORG_BIN" migrate
"$FILEORG_BIN" descriptor --out envoy/fileorganizer.pb

pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

say "starting fileorg serve on ${GRPC_ADDR:-127.0.0.1:50051}"
"$FILEORG_BIN" serve &
pids+=($!)
for _ in $(seq 1 60); do
    "$FILEORG_BIN" healthcheck --timeout 1 >/dev/null 2>&1 && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "fileorg serve exited" >&2; exit 1; }
    sleep 0.5
done

say "starting Envoy on 127.0.0.1:8080 (REST) -> fileorg"
"$ENVOY_BIN" -c envoy/envoy.yaml --base-id "${ENVOY_BASE_ID:-7}" --log-level warn &
pids+=($!)

cat <<MSG

FileOrganizer Pro is running ($FILEORG_BIN).
  gRPC / grpc-web : ${GRPC_ADDR:-127.0.0.1:50051}
  REST (Envoy)    : http://127.0.0.1:8080   e.g. curl http://127.0.0.1:8080/health
  Console         : http://${CONSOLE_ADDR}/  (API: ${CONSOLE_API_URL:-http://${GRPC_ADDR:-127.0.0.1:50051}})
Press Ctrl-C to stop.
MSG
# Exit (and stop the other) as soon as either process ends.
wait -n "${pids[@]}"
