"""The README's example works as written (against the test server instead of localhost:50051)."""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from pathlib import Path


def test_readme_example_runs(url: str) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert len(code.strip().splitlines()) == 10
    code = code.replace("localhost:50051", url).replace("me@example.com", f"readme-{uuid.uuid4().hex[:8]}@example.com")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith("SUCCEEDED"), lines
    assert lines[-1] == "['Documents']", lines
