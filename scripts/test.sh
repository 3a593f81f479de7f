#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints (clippy, buf, shellcheck, domain
# words spelled once), and all tests (unit tests and the integration binary,
# which starts real servers against the local Postgres and Redis, the Python
# clients and a real Envoy), then the deployment's contents run the way its
# containers would (scripts/exercise-deploy.sh; needs root or passwordless sudo).
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_services
say "installing tools (Envoy, Python clients, buf) if needed"
ensure_tools

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
say "buf lint"
npx --no-install buf lint
say "shell scripts (shellcheck)"
.venv/bin/shellcheck -x --source-path=SCRIPTDIR -S warning scripts/*.sh sdk/*/generate.sh .ci/run
say "domain words spelled once (check-domain-strings)"
scripts/check-domain-strings.sh
say "deployment files (Dockerfile, compose, workflows, Kubernetes)"
scripts/lint-deploy.sh
say "alert rules and scrape config (promtool check / test rules; deploy/observability)"
(cd deploy/observability && "${PROMTOOL:-promtool}" check config prometheus.yml \
    && "${PROMTOOL:-promtool}" test rules alerts.test.yml)
say "generated SDK code and OpenAPI document up to date"
sdk/python/generate.sh --check && sdk/typescript/generate.sh --check \
    && .venv/bin/python sdk/openapi/generate.py --check
say "TypeScript SDK and console build (tsc type checks, vite)"
npm run build --silent
say "cargo test"
# Snapshot assertions (insta, tests/api/snapshots/) only compare here, as in CI: a changed or
# missing snapshot fails the test and nothing is written (tests/README.md: accepting a change).
export INSTA_UPDATE=no
unset INSTA_FORCE_PASS
cargo test --all-targets -- --test-threads "${TEST_THREADS:-4}"
say "the deployment as its containers run it (scripts/exercise-deploy.sh, docs/deploy.md)"
scripts/exercise-deploy.sh
