"""The wrappers' conversions (fileorganizer.convert, fileorganizer.wrappers): enum names in and
out, views, request building and its errors; and, against the live server, pages followed to
the end and an enum given every way it may be."""

from __future__ import annotations

import datetime as dt
import inspect
from pathlib import Path

import pytest

import fileorganizer
from fileorganizer import pb
from fileorganizer.convert import View, build, enum_value
from fileorganizer.wrappers import WRAPPERS


def test_enum_values_are_taken_by_short_or_full_name_or_number() -> None:
    state = pb.operation.OperationState.DESCRIPTOR
    expected = pb.operation.OPERATION_STATE_SUCCEEDED
    for given in ("SUCCEEDED", "succeeded", "OPERATION_STATE_SUCCEEDED", expected):
        assert enum_value(state, given) == expected, given
    for wrong in ("DONE", "", 99, True, None, 1.0):
        with pytest.raises(fileorganizer.UnknownEnumValue) as err:
            enum_value(state, wrong, "state")
        assert isinstance(err.value, ValueError)
        assert "use one of QUEUED, RUNNING" in str(err.value) and "UNSPECIFIED" not in str(err.value)
        assert err.value.valid[0] == "QUEUED" and err.value.field == "state"


def test_a_wrong_enum_in_a_nested_message_names_its_path() -> None:
    with pytest.raises(fileorganizer.UnknownEnumValue) as err:
        build(pb.automation.CreateAutomationRequest, {"automation": {"operation": {"kind": "TIDY"}}})
    assert str(err.value).startswith("automation.operation.kind: 'TIDY' is not a OperationKind")
    with pytest.raises(fileorganizer.UnknownEnumValue) as err2:
        next(w for w in WRAPPERS if w.name == "list_file_records").request("operations/x", status="DONE")
    assert "PLANNED" in str(err2.value)


def test_unknown_keywords_are_refused_with_the_fields_there_are() -> None:
    with pytest.raises(TypeError) as err:
        next(w for w in WRAPPERS if w.name == "search_files").request(name="x")
    assert "SearchFilesRequest has no field 'name'" in str(err.value) and "name_contains" in str(err.value)


def test_views_read_enums_as_names_and_times_as_datetimes() -> None:
    op = pb.operation.Operation(
        name="operations/1",
        kind=pb.operation.OPERATION_KIND_UNDO,
        state=pb.operation.OPERATION_STATE_SUCCEEDED,
        include_globs=["*.jpg"],
        counters=pb.operation.OperationCounters(files_moved=3),
    )
    op.create_time.FromDatetime(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    v = View(op)
    assert (v.kind, v.state, v.phase) == ("UNDO", "SUCCEEDED", "UNSPECIFIED")
    assert v.create_time == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert v.end_time is None and v.counters.files_moved == 3 and v.include_globs == ["*.jpg"]
    assert v.to_dict()["state"] == "SUCCEEDED" and v.to_dict()["counters"]["files_moved"] == 3
    assert v.pb is op and v == op and "state='SUCCEEDED'" in repr(v)
    with pytest.raises(AttributeError, match="read-only"):
        v.state = "FAILED"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="has no field 'status'"):
        v.status
    # A view goes back in wherever a message does.
    assert build(pb.operation.GetOperationRequest, {"name": v.name}).name == "operations/1"


def test_wrappers_have_the_request_fields_as_keywords() -> None:
    sig = inspect.signature(fileorganizer.Client.list_operations)
    assert list(sig.parameters)[:4] == ["self", "page_size", "page_token", "state"]
    assert "Calls ``/fileorganizer.v1.OperationService/ListOperations``" in (
        fileorganizer.Client.list_operations.__doc__ or ""
    )
    created = inspect.signature(fileorganizer.Client.create_category)
    assert "display_name" in created.parameters and "file_count" not in created.parameters  # output only


def test_pages_are_followed_to_the_end(client: fileorganizer.Client, tmp_path: Path) -> None:
    names = [f"f{i}.txt" for i in range(5)]
    for name in names:
        client.upload_small_file(f"many/{name}", name.encode())
    assert [e.name for e in client.iter_directory("many", page_size=2)] == names
    assert [e.name for e in client.list_directory("many", page_size=1)] == names
    lazy = client.iter_directory("many", page_size=2)
    assert next(lazy).name == "f0.txt"  # the first page only is fetched so far
    for given in ("ORGANIZE", "organize", "OPERATION_KIND_ORGANIZE", pb.operation.OPERATION_KIND_ORGANIZE):
        assert client.list_operations(kind=given) == []


def test_undo_state_is_a_name_like_progress_state(client: fileorganizer.Client) -> None:
    client.upload_small_file("inbox/a.txt", b"a")
    last = list(client.organize("inbox", "sorted"))[-1]
    assert isinstance(last.state, str) and last.state == "SUCCEEDED"
    undo = client.undo(last)
    assert isinstance(undo.state, str) and undo.state == "SUCCEEDED"
    assert client.operation(undo).kind == "UNDO"
