#!/usr/bin/env bash
# Fails when a domain word is spelled as a string literal in src/ outside its
# one mapping (issue 19).
#
# The words are those of src/domain/enums.rs: every operation state, kind and
# phase, record status, role and policy, each declared there once with its
# spelling (`Variant = "word",`). Everything else uses the enums: the database
# binds them (db::enums; SQL text that needs a word inside renders it from the
# same spelling), JSON goes through their serde impls, protobuf maps variant
# to variant in src/api/convert.rs. So a quoted word ("planned", or 'planned'
# in SQL) anywhere else is a second spelling that can drift.
#
# Not checked: src/domain/enums.rs itself, comments, and test modules (from a
# `#[cfg(test)]` line followed by `mod …` to the end of the file). A literal
# that is the same letters but not the domain value goes in ALLOWED below,
# with the reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAPPING=src/domain/enums.rs

# file|text on the line: same letters, another meaning.
ALLOWED=(
    # NOT_FOUND names the resource, a user; not the role.
    'src/api/auth.rs|AppError::not_found("user")'
    # The `report` cache namespace (infra::cache), not the phase.
    'src/api/reports.rs|get::<pb::OperationReport>("report", key)'
    'src/api/reports.rs|cache.put("report", key'
    'src/infra/cache.rs|"report" => self.ttls.report'
    'src/infra/cache.rs|("report", key)'
    # The admin *scope*'s spelling (auth::scopes has its own mapping).
    'src/auth/scopes.rs|Scope::Admin => "admin"'
    # Why a file's hash was not computed (the job stops there), not a state.
    'src/engine/duplicates.rs|Err("cancelled".to_string())'
    # The rename *action* of an organizing rule (its API field), not the conflict policy.
    'src/domain/rule.rs|RuleAction::Rename { .. } => "rename"'
    # UpdateAutomation's update_mask paths: the proto's field names of the trigger oneof.
    'src/api/automations.rs|const SCHEDULE_PATH: &str = "schedule"'
    'src/api/automations.rs|const ARRIVAL_PATH: &str = "arrival"'
    'src/api/automations.rs|const WATCHED_FOLDER_PATH: &str = "watched_folder"'
    # Keys and labels of the CLI tools' own JSON reports.
    'src/cli/find_duplicates.rs|"skipped": scanned.skipped.len()'
    'src/cli/loadtest/mod.rs|print_server("organize"'
    'src/cli/loadtest/mod.rs|"organize": organize_result'
    'src/cli/loadtest/mod.rs|"succeeded": succeeded'
    'src/cli/loadtest/mod.rs|print_server("undo"'
    'src/cli/loadtest/mod.rs|"undo": undo_result'
)

words=$(grep -oE '^[[:space:]]+[A-Z][A-Za-z]* = "[a-z_]+",$' "$MAPPING" \
    | sed -E 's/.*"([a-z_]+)".*/\1/' | sort -u | paste -sd '|' -)
if [[ -z "$words" ]]; then
    echo "check-domain-strings: found no words in $MAPPING; has its format changed?" >&2
    exit 2
fi

# Code lines of every source file but the mapping, as file:line:text.
code_lines() {
    find src -name '*.rs' ! -path "$MAPPING" -print0 | sort -z \
        | xargs -0 awk '
            FNR == 1 { skip = 0; prev = "" }
            skip { next }
            prev ~ /^[[:space:]]*#\[cfg\(test\)\]/ && /^[[:space:]]*(pub(\(crate\))? )?mod [a-z_]+ \{/ {
                skip = 1; next
            }
            { prev = $0 }
            /^[[:space:]]*\/\// { next }
            { print FILENAME ":" FNR ":" $0 }'
}

declare -A used=()

allowed() {
    local hit=$1 entry file text
    for entry in "${ALLOWED[@]}"; do
        file=${entry%%|*}
        text=${entry#*|}
        if [[ "$hit" == "$file:"* && "$hit" == *"$text"* ]]; then
            used[$entry]=1
            return 0
        fi
    done
    return 1
}

found=0
while IFS= read -r hit; do
    if ! allowed "$hit"; then
        echo "$hit" >&2
        found=$((found + 1))
    fi
done < <(code_lines | grep -E "[\"'](${words})[\"']" || true)

# An entry that matches nothing any more would quietly allow a future line.
for entry in "${ALLOWED[@]}"; do
    if [[ -z "${used[$entry]:-}" ]]; then
        echo "check-domain-strings: ALLOWED entry matches nothing, remove it: $entry" >&2
        found=$((found + 1))
    fi
done

if ((found > 0)); then
    cat >&2 <<EOF

check-domain-strings: $found problem(s) above. A domain word spelled as a
string is a second spelling that can drift: use the enum of $MAPPING
(OperationState::Planned, …; its as_str() where text is really needed,
db::enums::lit/list inside SQL). If a literal only looks like one (another
meaning), add it to ALLOWED in $0 with the reason; remove
entries that match nothing.
EOF
    exit 1
fi
echo "check-domain-strings: no domain word spelled outside $MAPPING"
