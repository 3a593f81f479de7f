"""Fixtures for the SDK tests. They need a live server: FILEORG_URL (e.g. 127.0.0.1:50051),
set by the Rust integration test tests/api/python_sdk.rs, which starts one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import fileorganizer

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def url() -> str:
    value = os.environ.get("FILEORG_URL")
    if not value:
        pytest.skip("FILEORG_URL is not set (run through tests/api/python_sdk.rs)")
    return value


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
