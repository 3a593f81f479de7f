#!/usr/bin/env bash
# Runs the whole stack locally: builds `fileorg`, applies migrations, serves
# gRPC + grpc-web on GRPC_ADDR (127.0.0.1:50051) and REST through the Envoy
# sidecar on 127.0.0.1:8080. Ctrl-C stops both.
#
# Configuration comes from the environment (see the README's table); a `.env`
# file at the repository root is read first if present.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

if [[ -f .env ]]; then
    set -a; source .env; set +a
fi
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

ensure_services
say "installing tools (Envoy, Python clients, buf) if needed"
ensure_tools
say "building fileorg"
cargo build --bin fileorg
say "applying migrations"
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

FileOrganizer Pro is running.
  gRPC / grpc-web : ${GRPC_ADDR:-127.0.0.1:50051}
  REST (Envoy)    : http://127.0.0.1:8080   e.g. curl http://127.0.0.1:8080/health
Press Ctrl-C to stop.
MSG
# Exit (and stop the other) as soon as either process ends.
wait -n "${pids[@]}"
