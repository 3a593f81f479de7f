"""Fixtures for the SDK tests. They need a live server: FILEORG_URL (e.g. 127.0.0.1:50051) and
an admin on it (FILEORG_ADMIN_EMAIL, FILEORG_ADMIN_PASSWORD), set by the Rust integration
test tests/api/python_sdk.rs, which starts the server (`cargo test --test api python_sdk`).

Nothing here skips: a missing variable fails the test that needs it, and a skip from anywhere
(a marker, ``pytest.skip``, an import) is turned into a failure, so a suite that seems green
ran every test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

import fileorganizer

PASSWORD = "correct horse battery"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the SDK tests through tests/api/python_sdk.rs", pytrace=False)
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} was skipped ({report.longrepr}); the SDK tests never skip"


@pytest.fixture(scope="session")
def url() -> str:
    return _env("FILEORG_URL")


@pytest.fixture(scope="session")
def admin_login() -> tuple[str, str]:
    return _env("FILEORG_ADMIN_EMAIL"), _env("FILEORG_ADMIN_PASSWORD")


@pytest.fixture
def email() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def client(url: str, email: str) -> Iterator[fileorganizer.Client]:
    c = fileorganizer.Client(url)
    c.register(email, PASSWORD)
    yield c
    c.close()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    """A few local files of different categories, by name."""
    contents = {
        "notes.txt": b"hello from the python sdk\n",
        "photo.jpg": b"\xff\xd8\xff\xe0" + os.urandom(3000),
        "song.mp3": b"ID3" + os.urandom(5000),
        "copy-of-notes.txt": b"hello from the python sdk\n",
    }
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    return contents
