#!/usr/bin/env bash
# Builds a scratch database with a 1,000,000-record journal straight in SQL (no
# files on disk), then runs `fileorg db optimize` and `fileorg db analyze` on
# it: the figures of BENCHMARKS.md, "Hot queries at 1,000,000 records".
#
#   scripts/bench-queries.sh [--records N] [--runs R] [--keep] [--database NAME]
#
# The journal: user A owns one operation of N records (the one analyzed) and
# an older one of N/20; user B owns one of N/20 (other tenants' rows must not
# leak into A's search). 10 % of the records are duplicates: groups of two or
# three files of the same size and content hash (a quarter of the groups
# have two copies). Names come from 20 stems ("invoice", "IMG", "report", …),
# so a search for "invoice" matches ~5 % of the records. Sizes: 90 % 64 B–4 KiB,
# 9.5 % 4–64 KiB, 0.5 % 256 KiB–2 MiB, as `fileorg loadtest` writes them.
#
# `db analyze` runs R times (default 3: the first reads from disk, the others
# from a warm cache); a summary of every run's times closes the output. The
# database is dropped at the end unless --keep is given.
set -euo pipefail
exec </dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

records=1000000
runs=3
keep=false
database=fo_bench_queries
while [ $# -gt 0 ]; do
    case "$1" in
        --records) records="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --keep) keep=true; shift ;;
        --database) database="$2"; shift 2 ;;
        *) echo "usage: $0 [--records N] [--runs R] [--keep] [--database NAME]" >&2; exit 2 ;;
    esac
done

base="postgres://postgres@127.0.0.1:5432"
export DATABASE_URL="$base/$database"
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" "$@"; }

ensure_services
say "building fileorg"
cargo build --bin fileorg
bin="$CARGO_TARGET_DIR/debug/fileorg"

say "scratch database $database (migrated)"
psql -X -q -d "$base/postgres" -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)"
"$bin" migrate

say "journal: $records records (+ 2 x $((records / 20)) for an older operation and another user)"
started=$(date +%s)
psql_db -v records="$records" <<'SQL'
INSERT INTO users (id, email, password_hash) VALUES
    ('00000000-0000-7000-8000-00000000000a', 'bench-a@example.com', 'x'),
    ('00000000-0000-7000-8000-00000000000b', 'bench-b@example.com', 'x');
INSERT INTO operations (id, user_id, kind, state, source_path, destination_path, created_at) VALUES
    ('00000000-0000-7000-8000-0000000000a1', '00000000-0000-7000-8000-00000000000a', 'organize', 'succeeded', 'inbox', 'sorted', '2026-11-30 10:00:00+00'),
    ('00000000-0000-7000-8000-0000000000a0', '00000000-0000-7000-8000-00000000000a', 'organize', 'succeeded', 'old', 'sorted', '2026-11-01 10:00:00+00'),
    ('00000000-0000-7000-8000-0000000000b1', '00000000-0000-7000-8000-00000000000b', 'organize', 'succeeded', 'inbox', 'sorted', '2026-11-29 10:00:00+00');

-- One journal as the organize job writes it (one transaction: one created_at).
CREATE FUNCTION pg_temp.journal(op uuid, n bigint, at timestamptz) RETURNS void LANGUAGE sql AS $$
WITH s AS (
    SELECT seq,
           -- every 10th record is a copy of the record 5 before it, every
           -- 40th of the one 35 before (that group then has three files)
           CASE WHEN seq % 40 = 0 THEN seq - 35 WHEN seq % 10 = 0 THEN seq - 5 END AS keeper
    FROM generate_series(1, n) AS seq
), g AS (
    SELECT seq, keeper, coalesce(keeper, seq) AS root,
           (ARRAY['invoice','IMG','report','photo','Notes','backup','song','budget','scan','draft',
                  'resume','holiday','contract','Screenshot','video','letter','slides','data','archive','thesis'])
               [1 + (seq * 7919) % 20] AS stem
    FROM s
), r AS (
    SELECT g.*, (root * 2654435761) % 1000 AS dice,
           CASE (seq * 7919) % 20
               WHEN 0 THEN 'pdf' WHEN 1 THEN 'jpg' WHEN 2 THEN 'docx' WHEN 3 THEN 'png'
               WHEN 4 THEN 'txt' WHEN 5 THEN 'zip' WHEN 6 THEN 'mp3' WHEN 7 THEN 'xlsx'
               WHEN 8 THEN 'pdf' WHEN 9 THEN 'md' WHEN 10 THEN 'pdf' WHEN 11 THEN 'jpg'
               WHEN 12 THEN 'pdf' WHEN 13 THEN 'png' WHEN 14 THEN 'mp4' WHEN 15 THEN 'txt'
               WHEN 16 THEN 'pptx' WHEN 17 THEN 'csv' WHEN 18 THEN 'tar.gz' ELSE 'pdf' END AS ext
    FROM g
)
INSERT INTO file_records (operation_id, seq, original_path, new_path, size_bytes, modified_at,
                          device, inode, content_hash, category, duplicate_of, status, reason,
                          created_at, mtime_ns, user_id)
SELECT op, seq,
       'inbox/folder-' || (seq / 40) || '/' || stem || '-' || (seq % 9973) || '-' || seq || '.' || ext,
       CASE ext WHEN 'jpg' THEN 'Images' WHEN 'png' THEN 'Images' WHEN 'mp3' THEN 'Audio'
                WHEN 'mp4' THEN 'Videos' WHEN 'zip' THEN 'Archives' WHEN 'tar.gz' THEN 'Archives'
                ELSE 'Documents' END
           || '/' || stem || '-' || (seq % 9973) || '-' || seq || '.' || ext,
       CASE WHEN dice < 900 THEN 64 + (root * 31) % 4032
            WHEN dice < 995 THEN 4096 + (root * 17) % 61440
            ELSE 262144 + (root * 13) % 1835008 END,
       timestamptz '2024-01-01' + make_interval(secs => root),
       2049, seq,
       CASE WHEN keeper IS NOT NULL OR seq % 10 = 5 OR seq % 3 = 0
            THEN decode(md5(op::text || root) || md5(root || op::text), 'hex') END,
       CASE ext WHEN 'jpg' THEN 'Images' WHEN 'png' THEN 'Images' WHEN 'mp3' THEN 'Audio'
                WHEN 'mp4' THEN 'Videos' WHEN 'zip' THEN 'Archives' WHEN 'tar.gz' THEN 'Archives'
                ELSE 'Documents' END,
       keeper,
       CASE WHEN keeper IS NOT NULL THEN 'duplicate' WHEN seq % 101 = 0 THEN 'skipped' ELSE 'completed' END,
       CASE WHEN seq % 101 = 0 AND keeper IS NULL THEN 'changed since the plan' END,
       at, NULL, (SELECT user_id FROM operations WHERE id = op)
FROM r
$$;

SELECT pg_temp.journal('00000000-0000-7000-8000-0000000000a1', :records, '2026-11-30 10:05:00+00');
SELECT pg_temp.journal('00000000-0000-7000-8000-0000000000a0', :records / 20, '2026-11-01 10:05:00+00');
SELECT pg_temp.journal('00000000-0000-7000-8000-0000000000b1', :records / 20, '2026-11-29 10:05:00+00');
-- SearchFiles' names, as the server's background task writes them after a
-- job (db::file_names::index_next; migration 000015).
INSERT INTO file_names (operation_id, seq, names, content_hash)
SELECT operation_id, seq, file_record_names(original_path, new_path), content_hash FROM file_records;
SQL
echo "journal written in $(( $(date +%s) - started )) s"

say "fileorg db optimize"
"$bin" db optimize
summary=$(mktemp)
out=$(mktemp)
for run in $(seq 1 "$runs"); do
    say "fileorg db analyze (run $run of $runs)"
    "$bin" db analyze --operation 00000000-0000-7000-8000-0000000000a1 >"$out"
    cat "$out"
    sed -n "s/^-> /run $run: /p" "$out" >>"$summary"
done
say "execution times"
cat "$summary"
rm -f "$summary" "$out"

if [ "$keep" = true ]; then
    echo "kept: DATABASE_URL=$DATABASE_URL"
else
    psql -X -q -d "$base/postgres" -c "DROP DATABASE \"$database\" WITH (FORCE)"
    echo "dropped $database"
fi
