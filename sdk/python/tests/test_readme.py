"""Every example of the README runs as written against the live server, prints what its
comments say, and together the examples call every wrapper.

The ```python blocks run in order in one namespace (the README presents them as one script),
with ``localhost:50051`` replaced by the test server, ``me@example.com`` by a fresh user and
``admin@example.com`` by the admin the harness made. A line ``print(...)  # text`` must print
exactly ``text`` (the last time it runs)."""

from __future__ import annotations

import builtins
import io
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import fileorganizer
from test_coverage import wrappers

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> List[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def expectations(code: str) -> Dict[int, str]:
    """Line number -> the output its comment promises."""
    out: Dict[int, str] = {}
    for number, line in enumerate(code.splitlines(), start=1):
        if "print(" in line and "  # " in line:
            out[number] = line.split("  # ", 1)[1].strip()
    return out


def test_readme_examples_run_and_print_what_they_say(url: str, admin_login: Tuple[str, str]) -> None:
    email = f"readme-{uuid.uuid4().hex[:8]}@example.com"
    namespace: Dict[str, Any] = {"__name__": "readme"}
    for index, code in enumerate(blocks()):
        code = (
            code.replace("localhost:50051", url)
            .replace("me@example.com", email)
            .replace("admin@example.com", admin_login[0])
        )
        filename = f"README.md block {index + 1}"
        printed: Dict[int, str] = {}

        def recording_print(*args: Any, **kwargs: Any) -> None:
            buf = io.StringIO()
            builtins.print(*args, file=buf)
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename != filename:
                frame = frame.f_back  # type: ignore[assignment]
            if frame is not None:
                printed[frame.f_lineno] = buf.getvalue().rstrip("\n")

        namespace["print"] = recording_print
        exec(compile(code, filename, "exec"), namespace)
        wrong = [
            f"{filename}, line {line}: printed {printed.get(line, '(nothing)')!r}, says {expected!r}"
            for line, expected in expectations(code).items()
            if printed.get(line) != expected
        ]
        assert not wrong, "\n".join(wrong)


def test_the_readme_shows_every_wrapper() -> None:
    code = "\n".join(blocks())
    names = {name for names in wrappers(fileorganizer.Client).values() for name in names}
    missing = sorted(n for n in names if not re.search(rf"\.{n}\(", code))
    assert not missing, f"wrappers without a README example: {missing}"
    # The asyncio client is shown once: its wrappers are the same (test_coverage.py) and
    # test_aio.py calls them.
    assert "AsyncClient(" in code
