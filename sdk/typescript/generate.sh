#!/usr/bin/env bash
# Generates the TypeScript message schemas and service descriptors of proto/ (with the
# vendored google/api and google/rpc protos they import) into sdk/typescript/src/gen/ with
# buf and protoc-gen-es (both pinned in the root package.json; run `npm ci` first).
#   sdk/typescript/generate.sh          regenerate in place
#   sdk/typescript/generate.sh --check  regenerate into a temp dir and fail if the committed code differs
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEST="$HERE/src/gen"
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1
export PATH="$ROOT/node_modules/.bin:$PATH"
if ! command -v buf >/dev/null || ! command -v protoc-gen-es >/dev/null; then
    echo "sdk/typescript/generate.sh: buf or protoc-gen-es missing: run npm ci (or scripts/setup-tools.sh)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# buf resolves the template's relative `out` against the working directory.
(cd "$tmp" && buf generate "$ROOT" --template "$HERE/buf.gen.yaml")

if [[ $CHECK == 1 ]]; then
    if ! diff -r "$tmp/src/gen" "$DEST" >&2; then
        echo "sdk/typescript/generate.sh: generated code in $DEST is stale; run sdk/typescript/generate.sh" >&2
        exit 1
    fi
    echo "sdk/typescript: generated code is up to date"
else
    rm -rf "$DEST"
    cp -r "$tmp/src/gen" "$DEST"
    echo "sdk/typescript: generated $(find "$DEST" -name '*.ts' | wc -l) files into $DEST"
fi
