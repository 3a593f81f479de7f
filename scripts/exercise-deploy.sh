#!/usr/bin/env bash
# Runs the shipped deployment (Dockerfile, docker-compose.yml, the Envoy image's config) the way
# the containers would run it, without a container engine: tests/deploy/exercise.py says exactly
# what it runs and checks, docs/deploy.md why (no engine here can obtain the base images).
#
#   scripts/exercise-deploy.sh     uses FILEORG_BIN (scripts/lib.sh: the debug build; set it to
#                                  target/release/fileorg for the binary the image carries)
#
# Needs root (network and mount namespaces, chroot, switching to the images' users); re-runs
# itself with `sudo -n` otherwise. Needs console/dist (npm run build), PostgreSQL's server
# binaries, redis-server and the tools of scripts/setup-tools.sh. Run by scripts/test.sh.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

if [[ "$(id -u)" != 0 ]]; then
    exec sudo -n --preserve-env=FILEORG_BIN,ENVOY_BIN,CARGO_TARGET_DIR,CHROMIUM_PATH,PATH "$0" "$@"
fi
[[ -n "${ENVOY_BIN:-}" ]] || ensure_tools
[[ -x "$FILEORG_BIN" ]] || { echo "exercise-deploy: no fileorg binary at $FILEORG_BIN" >&2; exit 1; }
[[ -f console/dist/index.html ]] || { echo "exercise-deploy: no console build (npm run build)" >&2; exit 1; }

rm -rf data/test-artifacts/deploy
EXERCISE_WORK="$(mktemp -d "${TMPDIR:-/tmp}/fo-deploy.XXXXXX")"
chmod 755 "$EXERCISE_WORK"
trap 'rm -rf "$EXERCISE_WORK"' EXIT
export EXERCISE_WORK FILEORG_BIN ENVOY_BIN
# A network namespace of its own (only loopback, the stack's ports free) and a private mount
# namespace (the containers' roots, volumes and sockets vanish with it).
unshare --net --mount --propagation private --fork -- .venv/bin/python tests/deploy/exercise.py
