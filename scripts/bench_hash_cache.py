"""The client half of scripts/bench-hash-cache.sh (run by it; see there).

    bench_hash_cache.py register ADDR        a new user; its id into $DATA_DIR/bench-user-id
    bench_hash_cache.py run ADDR LABEL       one dry run of inbox -> sorted; its numbers into
                                             data/reports/bench_hash_cache_LABEL.json
    bench_hash_cache.py summary DB           the three runs side by side (bytes from Postgres)
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import fileorganizer

PASSWORD = "correct horse battery"
EMAIL_FILE = os.path.join(os.environ.get("DATA_DIR", "."), "bench-email")
ID_FILE = os.path.join(os.environ.get("DATA_DIR", "."), "bench-user-id")
REPORTS = "data/reports"


def register(addr: str) -> None:
    email = f"bench-hash-{time.time_ns()}@example.com"
    client = fileorganizer.Client(addr)
    user = client.register(email, PASSWORD)
    with open(EMAIL_FILE, "w") as f:
        f.write(email)
    with open(ID_FILE, "w") as f:
        f.write(user.name.split("/", 1)[1])


def run(addr: str, label: str) -> None:
    client = fileorganizer.Client(addr)
    with open(EMAIL_FILE) as f:
        client.login(f.read().strip(), PASSWORD)
    started = time.monotonic()
    last = None
    for last in client.organize("inbox", "sorted", dry_run=True):
        pass
    seconds = time.monotonic() - started
    assert last is not None and last.state == "PLANNED", last
    op = client.operation(last.name)
    phases = {p.phase: p.duration.total_seconds() for p in op.phase_durations}
    plan = sorted((r.original_path, r.new_path, r.status) for r in client.iter_file_records(op, page_size=1000))
    out = {
        "label": label,
        "operation": op.name,
        "end_to_end_seconds": seconds,
        "phase_seconds": phases,
        "records": len(plan),
        "plan_digest": hashlib.sha256(json.dumps(plan).encode()).hexdigest(),
    }
    client.cancel_operation(op)  # a PLANNED dry run is not applied; the next run plans afresh
    with open(os.path.join(REPORTS, f"bench_hash_cache_{label}.json"), "w") as f:
        json.dump(out, f, indent=2)


def summary(db: str) -> None:
    runs = []
    for label in ("first", "second", "off"):
        with open(os.path.join(REPORTS, f"bench_hash_cache_{label}.json")) as f:
            r = json.load(f)
        op_id = r["operation"].split("/", 1)[1]
        sql = f"SELECT bytes_hashed FROM operations WHERE id = '{op_id}'"
        url = f"postgres://postgres@127.0.0.1:5432/{db}"
        r["bytes_hashed"] = int(subprocess.check_output(["psql", "-X", "-At", "-d", url, "-c", sql]).strip() or 0)
        runs.append(r)
    for r in runs:
        p = r["phase_seconds"]
        print(
            f"{r['label']:>6}: {r['records']} records, end to end {r['end_to_end_seconds']:.2f} s, "
            f"HASH phase {p.get('HASH', 0):.3f} s, read {r['bytes_hashed'] / 2**20:.1f} MiB"
        )
    first, second, off = runs
    same = first["plan_digest"] == second["plan_digest"] == off["plan_digest"]
    print(f"plans identical: {same}")
    h1, h2 = first["phase_seconds"].get("HASH", 0), second["phase_seconds"].get("HASH", 0)
    print(f"second run: HASH phase {h2:.3f} s against {h1:.3f} s ({h2 / max(h1, 1e-9):.3f}x), "
          f"{second['bytes_hashed']} bytes read")
    if not same:
        sys.exit("the plans differ")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "register":
        register(sys.argv[2])
    elif command == "run":
        run(sys.argv[2], sys.argv[3])
    elif command == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(__doc__)
