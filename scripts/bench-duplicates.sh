#!/usr/bin/env bash
# Duplicate finding side by side (issue 7): the engine's scan + staged hashing
# (`fileorg find-duplicates`) against `fclones group` and czkawka's duplicate
# finder (`czkawka_cli dup -s hash`) on one synthetic tree, in one run.
#
#   scripts/bench-duplicates.sh [FILES] [RUNS]      (defaults: 1000000 files, 3 runs)
#
# The tree is `fileorg loadtest --generate-only` (seed 42, 10 % duplicates, a
# quarter of them hard links), written once under $BENCH_DIR and reused; it
# is in the page cache after the first run (the first run of each tool is a
# warm-up and not counted). Each tool runs with the machine's thread count
# and default settings, except that czkawka's minimum size is lowered to
# 1 byte (its default, 8 KiB, would skip most of the tree) and its hash cache is
# off (-H), as fclones' is by default; -W because it exits non-zero when it
# finds duplicates. Wall time and peak RSS come from
# /usr/bin/time. fclones and czkawka_cli are installed with `cargo install`
# into $BENCH_TOOLS when missing (they are benchmark targets only, never
# dependencies of the service).
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

FILES="${1:-1000000}"
RUNS="${2:-3}"
BENCH_DIR="${BENCH_DIR:-/tmp/fileorg-bench-duplicates}"
BENCH_TOOLS="${BENCH_TOOLS:-$HOME/.cache/fileorganizer/bench-tools}"
THREADS="$(nproc)"
OUT="${OUT:-data/reports/bench_duplicates.json}"

release_build

tool() {
    local name="$1" crate="$2"
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    if [[ ! -x "$BENCH_TOOLS/bin/$name" ]]; then
        say "cargo install $crate (benchmark target)" >&2
        cargo install --quiet --root "$BENCH_TOOLS" "$crate" >&2
    fi
    echo "$BENCH_TOOLS/bin/$name"
}
FCLONES="$(tool fclones fclones)"
CZKAWKA="$(tool czkawka_cli czkawka_cli)"

TREE="$BENCH_DIR/tree-$FILES"
if [[ ! -f "$BENCH_DIR/tree-$FILES.json" ]]; then
    say "generating $FILES files under $TREE"
    rm -rf "$TREE"
    mkdir -p "$BENCH_DIR"
    "$FILEORG" loadtest --generate-only "$TREE" --files "$FILES" --seed 42 > "$BENCH_DIR/tree-$FILES.json.tmp"
    mv "$BENCH_DIR/tree-$FILES.json.tmp" "$BENCH_DIR/tree-$FILES.json"
fi

# Runs "$@" under /usr/bin/time; prints "<seconds> <peak KiB>".
measure() {
    local stats
    stats="$(mktemp)"
    /usr/bin/time -f '%e %M' -o "$stats" "$@" >"$BENCH_DIR/last.out" 2>"$BENCH_DIR/last.err" \
        || { cat "$BENCH_DIR/last.err" >&2; rm -f "$stats"; return 1; }
    cat "$stats"
    rm -f "$stats"
}

declare -A COMMANDS=(
    [fileorg]="$FILEORG find-duplicates $TREE --threads $THREADS --json"
    [fclones]="$FCLONES group $TREE --threads $THREADS -o $BENCH_DIR/fclones.txt"
    # czkawka: minimum size 1 byte (its default skips files under 8 KiB); override the
    # arguments with CZKAWKA_ARGS if its command line differs in the installed version.
    [czkawka]="$CZKAWKA ${CZKAWKA_ARGS:-dup -d $TREE -s hash -m 1 -H -T $THREADS -W -N -M -f $BENCH_DIR/czkawka.txt}"
)
results="{}"
for name in fileorg fclones czkawka; do
    say "$name: ${COMMANDS[$name]}"
    # shellcheck disable=SC2086
    measure ${COMMANDS[$name]} >/dev/null   # warm-up
    times=()
    for run in $(seq 1 "$RUNS"); do
        # shellcheck disable=SC2086
        read -r secs kib < <(measure ${COMMANDS[$name]})
        echo "  run $run: $secs s, peak RSS $((kib / 1024)) MiB"
        times+=("$secs $kib")
        if [[ "$name" == fileorg ]]; then cp "$BENCH_DIR/last.out" "$BENCH_DIR/fileorg.json"; fi
    done
    best="$(printf '%s\n' "${times[@]}" | sort -n | head -n1)"
    results="$(jq --arg n "$name" --arg cmd "${COMMANDS[$name]}" --argjson s "${best% *}" --argjson k "${best#* }" \
        '.[$n] = {best_seconds: $s, peak_rss_kib: $k, command: $cmd}' <<<"$results")"
done

summary="$(jq -n --argjson r "$results" --argjson tree "$(cat "$BENCH_DIR/tree-$FILES.json")" \
    --argjson engine "$(cat "$BENCH_DIR/fileorg.json")" --arg date "$(date -u +%FT%TZ)" \
    --arg cpus "$THREADS" --arg mem "$(awk '/MemTotal/{print $2}' /proc/meminfo)" '{
      date: $date, cpus: ($cpus|tonumber), mem_total_kib: ($mem|tonumber), runs_counted: '"$RUNS"',
      tree: $tree, engine_detail: $engine, tools: $r,
      ratios: { fclones_over_fileorg: ($r.fclones.best_seconds / $r.fileorg.best_seconds),
                czkawka_over_fileorg: ($r.czkawka.best_seconds / $r.fileorg.best_seconds) } }')"
mkdir -p "$(dirname "$OUT")"
echo "$summary" > "$OUT"
say "best of $RUNS runs (seconds, peak RSS)"
jq -r '.tools | to_entries[] | "\(.key)\t\(.value.best_seconds) s\t\(.value.peak_rss_kib / 1024 | floor) MiB"' <<<"$summary"
jq -r '.ratios | to_entries[] | "\(.key)\t\(.value * 100 | round / 100)x"' <<<"$summary"
echo "wrote $OUT"
