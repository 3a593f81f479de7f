#!/usr/bin/env bash
# The journal's COPY throughput (issue 7, BENCHMARKS.md): a 1,000,000-row
# journal copied in binary into a scratch table shaped like file_records,
# once with no index and once with every index file_records has, in a
# transaction that is rolled back.
#
#   scripts/bench-journal-copy.sh [DATABASE] [RUNS]   (defaults: fo_bench_organize, 3)
#
# DATABASE must hold a journal: the one `KEEP=1 scripts/bench-organize.sh`
# leaves (a real 1M organize), or, when it does not exist, one written
# straight in SQL by `scripts/bench-queries.sh --keep` (1.1M records). The
# rows are exported once, in journal order, with `\copy … (FORMAT binary)`,
# the way the server streams them. The scratch table copies file_records'
# columns and defaults (and, for the second set, its indexes with
# `INCLUDING INDEXES`) and its storage parameters (fillfactor). Statement
# triggers (duplicate groups) are not copied: the organize's JOURNAL phase
# shows the whole write, triggers and commit included. A regular table, not a
# temporary one: its rows and index entries are WAL-logged like the journal's.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$ROOT"

DB="${1:-fo_bench_organize}"
RUNS="${2:-3}"
URL="$PG_BASE/$DB"
EXPORT="${EXPORT:-/tmp/fo-bench-journal.bin}"

ensure_services
if ! psql -X -qAt -d "$PG_BASE/postgres" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    say "$DB does not exist: writing a journal in SQL (scripts/bench-queries.sh)"
    scripts/bench-queries.sh --keep --database "$DB" --runs 1 >/dev/null
fi
ROWS="$(psql -X -qAt -d "$URL" -c "SELECT count(*) FROM file_records")"
say "exporting $ROWS journal rows of $DB"
psql -X -q -d "$URL" -c "\\copy (SELECT * FROM file_records ORDER BY operation_id, seq) TO '$EXPORT' WITH (FORMAT binary)"
OPTIONS="$(psql -X -qAt -d "$URL" -c "SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class WHERE relname = 'file_records'")"
INDEXES="$(psql -X -qAt -d "$URL" -c "SELECT string_agg(indexname, ', ' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'file_records'")"
say "file_records: storage (${OPTIONS:-defaults}), indexes: $INDEXES"

copy_once() {
    local including="$1" with=""
    [ -n "$OPTIONS" ] && with="WITH ($OPTIONS)"
    psql -X -q -v ON_ERROR_STOP=1 -d "$URL" <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
BEGIN;
CREATE TABLE bench_journal_scratch (LIKE file_records $including) $with;
\\timing on
\\copy bench_journal_scratch FROM '$EXPORT' WITH (FORMAT binary)
\\timing off
ROLLBACK;
SQL
}

declare -A BEST
for run in $(seq 1 "$RUNS"); do
    for set in none all; do
        case "$set" in
            none) including="INCLUDING DEFAULTS" ;;
            all) including="INCLUDING DEFAULTS INCLUDING INDEXES" ;;
        esac
        ms="$(copy_once "$including")"
        printf 'run %s, %-4s indexes: %8.0f ms = %7.0f rows/s\n' "$run" "$set" "$ms" \
            "$(echo "$ROWS / ($ms / 1000)" | bc -l)"
        if [ -z "${BEST[$set]:-}" ] || [ "$(echo "$ms < ${BEST[$set]}" | bc)" = 1 ]; then BEST[$set]="$ms"; fi
    done
done
say "best of $RUNS"
for set in none all; do
    printf '%-4s indexes: %8.0f ms = %7.0f rows/s\n' "$set" "${BEST[$set]}" "$(echo "$ROWS / (${BEST[$set]} / 1000)" | bc -l)"
done
rm -f "$EXPORT"
