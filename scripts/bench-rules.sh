#!/usr/bin/env bash
# Organizing rules (issue 21): the same organize with 50 rules and with none, side by side in
# one invocation, and PreviewRules files per second (BENCHMARKS.md).
#
#   scripts/bench-rules.sh [FILES] [RULES] [RUNS]   (defaults: 1000000 files, 50 rules, 1 run)
#
# Each run is two organizes, alternating which goes first from run to run, each like
# scripts/bench-organize.sh's: a fresh database, no tree left from before, the page cache
# dropped (as root), a fresh `fileorg serve` (release build, no Redis, rate limits raised),
# then `fileorg loadtest --files FILES --seed 42 [--rules RULES]` writes the same synthetic tree
# into a new user's storage and organizes it through the gRPC API (apply included). With
# rules, the user first gets RULES rules (src/cli/loadtest/rules.rs: all but the last match
# nearly nothing, so every file is tried against every rule, with every kind of condition but
# the content type; the last moves the text files), and PreviewRules is timed on the tree
# before the organize: once with the stored rules, once with a content-type rule first (every
# file read). Reports: data/reports/bench_rules_<run>_<rules>.json; the summary compares the
# plan phase (where rules are evaluated) and the end-to-end time.
# RELEASE_TARGET picks the release build's target directory (see scripts/bench-lib.sh);
# BENCH_ADDR, BENCH_DB and BENCH_ROOT move the server, database and tree off their defaults
# (127.0.0.1:50153, fo_bench_rules, /tmp/fo-bench), as in scripts/bench-organize.sh.
# At 1,000,000 files the tree is scripts/bench-organize.sh's (the same loadtest, seed 42:
# 1M files, about 10.3 GiB, written straight into the user's storage and so in the page cache)
# and it is removed before the next organize writes it again, so the disk holds one tree and
# one database at a time (about 10.3 GiB + 2 GiB); it checks first that 13 KiB a file + 3 GiB are free.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

FILES="${1:-1000000}"
RULES="${2:-50}"
RUNS="${3:-1}"
ADDR="${BENCH_ADDR:-127.0.0.1:50153}"
DB="${BENCH_DB:-fo_bench_rules}"
export DATA_DIR="$BENCH_ROOT/data" STORAGE_ROOT="$BENCH_ROOT/storage"

ensure_services
release_build
# The tree takes about 10.8 KiB a file (1M files: 10.3 GiB), the database about 2 KiB a record.
need_kib=$((FILES * 13 + 3 * 1024 * 1024))
require_free_space "$(dirname "$BENCH_ROOT")" "$need_kib"
mkdir -p data/reports
rm -f data/reports/bench_rules_*.json
for run in $(seq 1 "$RUNS"); do
    order=(0 "$RULES")
    if [ $((run % 2)) = 0 ]; then order=("$RULES" 0); fi
    for rules in "${order[@]}"; do
        say "run $run of $RUNS: $FILES files, $rules rules"
        rm -rf "$BENCH_ROOT"
        fresh_database "$DB"
        drop_page_cache
        start_server "$ADDR"
        report="data/reports/bench_rules_${run}_${rules}.json"
        "$FILEORG" loadtest --addr "$ADDR" --files "$FILES" --seed 42 --rules "$rules" \
            --organize-timeout 3000 --server-pid "$SERVER_PID" --report --report-path "$report" \
            || echo "run $run ($rules rules): the loadtest exited $? (see $report)"
        stop_server "$SERVER_PID"
    done
done

say "summary"
python3 - "$RULES" data/reports/bench_rules_*.json <<'PY'
import json, sys
rules = sys.argv[1]
runs = {}
for path in sorted(sys.argv[2:]):
    r = json.load(open(path))
    o = r["organize"]
    run = path.rsplit("_", 2)[1]
    runs.setdefault(run, {})[str(o.get("rules", 0))] = o
for run, by in sorted(runs.items()):
    none, some = by.get("0"), by.get(rules)
    for label, o in (("no rules", none), (f"{rules} rules", some)):
        if o is None:
            continue
        p = o["phase_seconds"]
        print(f"run {run}, {label}: {o['files']} files in {o['end_to_end_seconds']:.1f} s "
              f"({o['files_per_second']:.0f} files/s), plan {p.get('plan', 0):.2f} s, "
              f"apply {p.get('apply', 0):.2f} s, state {o['state']}, rule set version "
              f"{o.get('rule_set_version', 0)}")
        preview = o.get("preview_rules")
        if preview:
            s, c = preview["stored_rules"], preview["content_type_rule_first"]
            print(f"  PreviewRules: {s['files_per_second']:.0f} files/s ({s['files']} files, "
                  f"{s['matched']} matched); with a content-type rule first "
                  f"{c['files_per_second']:.0f} files/s")
    if none and some:
        plan0, plan1 = none["phase_seconds"].get("plan", 0), some["phase_seconds"].get("plan", 0)
        e0, e1 = none["end_to_end_seconds"], some["end_to_end_seconds"]
        print(f"run {run}: rules cost {100 * (e1 - e0) / e0:+.1f} % end to end, plan phase "
              f"{plan0:.2f} -> {plan1:.2f} s ({100 * (plan1 - plan0) / max(plan0, 1e-9):+.1f} %)")
PY
if [ "${KEEP:-0}" != 1 ]; then
    drop_database "$DB"
    rm -rf "$BENCH_ROOT"
fi
