"""A property-based fuzz of the REST API from sdk/openapi/openapi.json (schemathesis), through a
real Envoy, authenticated, every operation. Run by tests/api/rest_fuzz.rs, which starts the server
and its Envoy and passes FILEORG_REST_URL and FILEORG_PASSWORD (not collected by the conformance
suite: its name does not start with test_).

Requests are generated from the document, valid ones and invalid ones (`--mode all`), in the
examples, coverage (boundary values of every bound: lengths, ranges, patterns, enums) and fuzzing
phases, at most FUZZ_EXAMPLES per operation and phase. Each response must be, as documented:

- not a 5xx (not_a_server_error);
- a status the operation lists (status_code_conformance);
- of a content type the operation lists for that status (content_type_conformance);
- a body matching that status's schema: the message for 200, google.rpc.Status for errors
  (response_schema_conformance).

The generation is seeded (FUZZ_SEED; set FILEORG_FUZZ_SEED to explore elsewhere) so CI reruns the
same requests; a failure prints the request to reproduce it (a curl line).

Defects it found: a burst of malformed JSON bodies made Envoy reset that many upstream streams
and the server's HTTP/2 rapid-reset guard then closed the connection every REST user shares (other
users' calls in flight failed with 503; src/server.rs, HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS,
regression test below); built-in categories list more extensions than a custom one may (the
document's bound was wrong for responses).

Every operation is run. Logout runs last and alone, with a session of its own, because it revokes
the credential it is called with (the other operations would all be 401 after it).
"""

from __future__ import annotations

import os
import subprocess
import threading
import sys
import time
import uuid
from pathlib import Path

import conformance
from conftest import RestClient, env

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "sdk/openapi/openapi.json"
FUZZ_EXAMPLES = 8
FUZZ_SEED = int(os.environ.get("FILEORG_FUZZ_SEED", "20261207"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Operations that end the session they are called with.
LAST = ("AuthService_Logout",)


def session(base: str, password: str) -> str:
    """A new user's access token."""
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    body = RestClient(base).ok("POST", "/api/v1/auth/register", json={"email": email, "password": password})
    return body["access_token"]


def schemathesis(base: str, token: str, workdir: Path, *selection: str) -> None:
    """Runs schemathesis on `selection` of the operations; its caches go to `workdir`."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", str(DOCUMENT),
        "--url", base,
        "--header", f"Authorization: Bearer {token}",
        "--checks", CHECKS,
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(FUZZ_EXAMPLES),
        "--seed", str(FUZZ_SEED),
        "--generation-database", "none",
        # One worker: hypothesis describes its filters with ast.parse, which Python 3.11.7 races on
        # from two threads ("AST constructor recursion depth mismatch", a schemathesis runtime error).
        "--workers", "1",
        "--request-timeout", "30",
        "--suppress-health-check", "all",
        "--no-color",
        *selection,
    ]
    started = time.monotonic()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    print(result.stdout[-20000:])
    print(result.stderr[-5000:], file=sys.stderr)
    print(f"schemathesis {' '.join(selection) or '(all)'}: {time.monotonic() - started:.0f} s")
    code = result.returncode  # not the CompletedProcess: pytest would print its output (and token) again
    assert code == 0, f"schemathesis found failures (exit {code}); see the output above"


def test_every_operation_answers_as_documented(tmp_path: Path) -> None:
    base = env("FILEORG_REST_URL")
    assert base.startswith("http://127.0.0.1:"), base  # only ever a local server
    password = env("FILEORG_PASSWORD")
    assert conformance.OPENAPI["paths"]
    excluded = [arg for op in LAST for arg in ("--exclude-operation-id", op)]
    schemathesis(base, session(base, password), tmp_path, *excluded)
    included = [arg for op in LAST for arg in ("--include-operation-id", op)]
    schemathesis(base, session(base, password), tmp_path, *included)


def test_a_burst_of_malformed_bodies_fails_no_other_call() -> None:
    """Envoy resets the upstream stream of every REST request whose JSON body does not parse; a burst
    of them must not make the server close the connection other users' calls share."""
    base = env("FILEORG_REST_URL")
    token = session(base, env("FILEORG_PASSWORD"))
    statuses: dict = {"bad": [], "good": []}
    lock = threading.Lock()

    def bad() -> None:
        client = RestClient(base, token)
        for _ in range(40):
            status = client.post("/api/v1/categories", data="{not json", headers={"content-type": "application/json"}).status_code
            with lock:
                statuses["bad"].append(status)

    def good() -> None:
        client = RestClient(base, token)
        for _ in range(40):
            status = client.get("/api/v1/auth/me").status_code
            with lock:
                statuses["good"].append(status)

    threads = [threading.Thread(target=bad) for _ in range(6)] + [threading.Thread(target=good) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses["bad"]) == {400}, sorted(set(statuses["bad"]))
    assert set(statuses["good"]) == {200}, sorted(set(statuses["good"]))
