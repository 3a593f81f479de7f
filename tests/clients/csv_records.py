"""Parses a report CSV export with Python's csv module, as a spreadsheet user's script would.

Usage: csv_records.py FILE.csv
Reads the file as UTF-8 with newline='' (as the csv module requires, so that
newlines inside quoted fields survive), checks the header and that every row
has as many fields, and prints the rows as a JSON list of objects keyed by
the header's column names (all values are strings, as in the file).
"""

import csv
import json
import sys

COLUMNS = [
    "seq",
    "original_path",
    "new_path",
    "status",
    "category",
    "size_bytes",
    "modify_time",
    "content_hash",
    "duplicate_of_path",
    "reason",
    "rule",
    "rule_version",
]


def main() -> None:
    with open(sys.argv[1], encoding="utf-8", newline="") as f:
        reader = csv.reader(f, strict=True)
        header = next(reader)
        if header != COLUMNS:
            sys.exit(f"unexpected header: {header!r}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if len(row) != len(COLUMNS):
                sys.exit(f"record {line} has {len(row)} fields: {row!r}")
            rows.append(dict(zip(COLUMNS, row)))
    json.dump(rows, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
