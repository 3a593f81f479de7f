"""Rules and automations through the SDK's wrappers (fileorganizer.wrappers) against a live
server: a rule made, previewed, applied by an organize, updated with its etag (a stale etag is
refused), deleted; an arrival automation made, paused, resumed and deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

import fileorganizer
from fileorganizer import pb


def invoices_rule() -> pb.rule.Rule:
    return pb.rule.Rule(
        display_name="Invoices",
        conditions=[pb.rule.RuleCondition(name_glob="invoice-*")],
        action=pb.rule.RuleAction(move=pb.rule.MoveAction(destination_template="Finance/{name}")),
    )


def test_rules_round_trip_and_decide_an_organize(client: fileorganizer.Client, tmp_path: Path) -> None:
    for name in ("invoice-7.pdf", "notes.txt"):
        (tmp_path / name).write_bytes(name.encode())
        client.upload(tmp_path / name, f"inbox/{name}")
    rule = client.create_rule(invoices_rule())
    assert rule.name.startswith("rules/") and rule.etag
    assert [r.name for r in client.list_rules()] == [rule.name]

    preview = {e.path: e for e in client.preview_rules(folder="inbox").entries}
    assert preview["inbox/invoice-7.pdf"].rule == rule.name
    assert "name_glob" in preview["inbox/invoice-7.pdf"].explanation
    assert preview["inbox/notes.txt"].rule == ""
    # A draft previews without being stored.
    draft = pb.rule.Rule(
        display_name="Notes",
        conditions=[pb.rule.RuleCondition(name_glob="*.txt")],
        action=pb.rule.RuleAction(move=pb.rule.MoveAction(destination_template="Notes/{name}")),
    )
    drafted = {e.path: e for e in client.preview_rules(folder="inbox", rules=[draft]).entries}
    assert drafted["inbox/notes.txt"].rule_display_name == "Notes"
    assert len(client.list_rules()) == 1

    last = list(client.organize("inbox", "sorted"))[-1]
    assert last.state == "SUCCEEDED", last
    assert client.list_directory("sorted/Finance")[0].name == "invoice-7.pdf"

    updated = client.update_rule(rule, display_name="Bills")
    assert updated.display_name == "Bills" and updated.etag != rule.etag
    assert updated.conditions[0].name_glob == "invoice-*"  # the mask kept the rest
    with pytest.raises(fileorganizer.Aborted) as stale:
        client.update_rule(rule, display_name="Bills")  # still the old etag
    assert stale.value.reason == "ETAG_MISMATCH"
    with pytest.raises(fileorganizer.InvalidArgument) as bad:
        client.create_rule(
            pb.rule.Rule(
                display_name="Bad",
                conditions=[pb.rule.RuleCondition(name_regex="(unclosed")],
                action=pb.rule.RuleAction(trash=pb.rule.TrashAction()),
            )
        )
    assert any(field == "rule.conditions[0].name_regex" for field, _ in bad.value.field_violations)
    client.delete_rule(updated.name, etag=updated.etag)
    assert client.list_rules() == []


def test_automations_are_made_paused_resumed_and_deleted(client: fileorganizer.Client) -> None:
    made = client.create_automation(
        pb.automation.Automation(
            display_name="Sort the inbox",
            arrival=pb.automation.ArrivalTrigger(folder_path="inbox"),
            operation=pb.operation.Operation(
                kind=pb.operation.OPERATION_KIND_ORGANIZE, source_path="inbox", destination_path="sorted"
            ),
        )
    )
    assert made.name.startswith("automations/") and not made.paused
    assert [a.name for a in client.list_automations()] == [made.name]
    assert client.pause_automation(made.name).paused
    resumed = client.resume_automation(made.name)
    assert not resumed.paused
    assert client.automation(made.name).display_name == "Sort the inbox"
    with pytest.raises(fileorganizer.Aborted):
        client.delete_automation(made.name, etag=made.etag)  # paused and resumed since
    client.delete_automation(made.name, etag=resumed.etag)
    with pytest.raises(fileorganizer.NotFound):
        client.automation(made.name)
