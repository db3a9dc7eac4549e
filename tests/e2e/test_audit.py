"""End-to-end: named API users and the audit trail on `harmrank-audit` (SPEC §9), on a real worker."""
from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import TOKEN, clean_env, read_topic, run_cli

pytestmark = pytest.mark.e2e

ALICE = "alice-e2e-token"


def test_requests_are_audited_with_their_user_and_status(own_broker, workers, tmp_path):
    tokens = tmp_path / "api-tokens"
    tokens.write_text(f"# named users\nalice:{hashlib.sha256(ALICE.encode()).hexdigest()}\n")
    worker = workers(own_broker, api_tokens=tokens)
    worker.start()
    worker.wait_ready()
    asked = [("/ranking", ALICE, 200), ("/ranking", TOKEN, 200), ("/ranking", "not-a-token", 401),
             ("/suspects/S1", None, 401), ("/suspects/S1", ALICE, 404)]
    for path, token, status in asked:
        assert worker.get(path, token=token)[0] == status, (path, token)
    for public in ("/healthz", "/readyz", "/metrics"):
        assert worker.get(public)[0] == 200
    records = [json.loads(r.value) for r in read_topic(own_broker, "harmrank-audit", expected=len(asked))]
    got = [(r["user"], r["method"], r["path"], r["status"]) for r in records]
    assert sorted(got) == sorted([("alice", "GET", "/ranking", 200), ("token", "GET", "/ranking", 200),
                   ("-", "GET", "/ranking", 401), ("-", "GET", "/suspects/S1", 401),
                   ("alice", "GET", "/suspects/S1", 404)])
    assert all(set(r) == {"at", "user", "method", "path", "status"} for r in records)
    log = worker.log_tail(1_000_000)
    assert ALICE not in log and TOKEN not in log  # no token in the worker's log


def test_a_bad_tokens_file_stops_the_worker_at_start_with_its_line(tmp_path):
    tokens = tmp_path / "api-tokens"
    tokens.write_text("# named users\n\nalice:not-a-hash\n")
    proc = run_cli(["worker"], clean_env(api_tokens=tokens, broker="kafka://127.0.0.1:1"), timeout=60)
    assert proc.returncode == 2
    assert f"{tokens}, line 3" in proc.stderr.decode() and b"Traceback" not in proc.stderr
