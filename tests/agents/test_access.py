"""The web port's token gate with named users (SPEC §9): who is let in, and the audit record of each request.

A real aiohttp application with the gate, served on a free port, and asked over HTTP.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from agents import metrics
from agents.access import Access, gate, load_named_tokens
from agents.audit import AuditTrail

ALICE, BOB, SHARED = "alice-secret", "bob-secret", "shared-secret"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def tokens_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# analysts\n\nalice:{sha(ALICE)}\n  bob : {sha(BOB).upper()}  \n")
    return path


def serve_and_ask(access: Access, requests: list) -> tuple[list, list]:
    """[(method, path, token)] asked of an app with the gate -> ([status...], [audit record...])."""
    records: list = []

    async def ok(request):
        return web.json_response({"ok": True})

    async def boom(request):
        raise RuntimeError("a handler that fails")

    async def run():
        app = web.Application(middlewares=[gate(access, records.append)])
        app.router.add_get("/ranking", ok)
        app.router.add_get("/suspects/{id}", ok)
        app.router.add_post("/ranking", ok)
        app.router.add_get("/boom", boom)
        for public in ("/healthz", "/readyz", "/metrics"):
            app.router.add_get(public, ok)
        statuses = []
        async with TestServer(app, host="127.0.0.1") as server, ClientSession() as session:
            for method, path, token in requests:
                headers = {} if token is None else {"Authorization": f"Bearer {token}"}
                async with session.request(method, server.make_url(path), headers=headers) as resp:
                    statuses.append(resp.status)
        return statuses

    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the failing handler's traceback
    return asyncio.run(run()), records


def test_the_file_loads_names_and_hashes(tokens_file):
    users = load_named_tokens(str(tokens_file))
    assert users == {"alice": bytes.fromhex(sha(ALICE)), "bob": bytes.fromhex(sha(BOB))}


@pytest.mark.parametrize("text, fault", [
    ("alice\n", "line 1: expected 'name:<sha256 hex of the token>'"),
    ("# c\nalice:abc\n", "line 2: the token hash of 'alice' must be 64 hex digits"),
    (f"alice:{sha(ALICE)}\nalice:{sha(BOB)}\n", "line 2: user 'alice' is named twice"),
    (f"alice:{sha(ALICE)}\n\nbob:{sha(ALICE)}\n", "line 3: user 'bob' has the same token as another user"),
    (f"token:{sha(ALICE)}\n", "line 1: the name 'token' is kept for the audit trail"),
    (f"-:{sha(ALICE)}\n", "line 1: the name '-' is kept"),
    (f"al ice:{sha(ALICE)}\n", "line 1: a user name is"),
    (f":{sha(ALICE)}\n", "line 1: a user name is"),
])
def test_a_bad_line_is_refused_with_its_number(tmp_path, text, fault):
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_named_tokens(str(path))
    assert f"{path}, {fault}" in str(err.value)
    assert sha(ALICE) not in str(err.value)  # a hash is never echoed


def test_a_line_that_is_not_utf8_is_refused_with_its_number_and_a_bom_is_read_past(tmp_path):
    path = tmp_path / "tokens"
    path.write_bytes(f"alice:{sha(ALICE)}\n".encode() + b"b\xffb:" + sha(BOB).encode() + b"\n")
    with pytest.raises(ValueError, match="line 2: not UTF-8 text"):
        load_named_tokens(str(path))
    path.write_bytes(b"\xef\xbb\xbf" + f"alice:{sha(ALICE)}\n".encode())
    assert load_named_tokens(str(path)) == {"alice": bytes.fromhex(sha(ALICE))}


def test_who_each_token_names(tokens_file):
    access = Access(SHARED, load_named_tokens(str(tokens_file)))
    assert access.user(f"Bearer {ALICE}") == "alice"
    assert access.user(f"bearer {BOB}") == "bob"
    assert access.user(f"Bearer {SHARED}") == "token"
    for header in ("", "Bearer", f"Bearer {ALICE}x", f"Basic {ALICE}", sha(ALICE), f"Bearer {sha(ALICE)}",
                   "Bearer \udcff"):
        assert access.user(header) is None, header
    named_only = Access(None, load_named_tokens(str(tokens_file)))
    assert not named_only.closed and named_only.user(f"Bearer {SHARED}") is None
    assert Access(None, {}).closed


def test_every_request_to_personal_data_is_audited_with_user_and_status(tokens_file):
    access = Access(SHARED, load_named_tokens(str(tokens_file)))
    statuses, records = serve_and_ask(access, [
        ("GET", "/ranking", ALICE), ("GET", "/suspects/S1", BOB), ("POST", "/ranking", SHARED),
        ("GET", "/ranking", "wrong"), ("GET", "/suspects/S2", None), ("GET", "/nowhere", ALICE),
        ("GET", "/boom", ALICE), ("GET", "/healthz", None), ("GET", "/metrics", None), ("GET", "/readyz", ALICE),
    ])
    assert statuses == [200, 200, 200, 401, 401, 404, 500, 200, 200, 200]
    assert [(r["user"], r["method"], r["path"], r["status"]) for r in records] == [
        ("alice", "GET", "/ranking", 200), ("bob", "GET", "/suspects/S1", 200), ("token", "POST", "/ranking", 200),
        ("-", "GET", "/ranking", 401), ("-", "GET", "/suspects/S2", 401), ("alice", "GET", "/nowhere", 404),
        ("alice", "GET", "/boom", 500),
    ]
    assert all(r["at"].endswith("+00:00") and set(r) == {"at", "user", "method", "path", "status"} for r in records)


def test_a_closed_gate_refuses_and_audits_every_personal_path():
    statuses, records = serve_and_ask(Access(None), [("GET", "/ranking", SHARED), ("GET", "/healthz", None)])
    assert statuses == [403, 200]
    assert [(r["user"], r["status"]) for r in records] == [("-", 403)]


class FailingApp:
    """An app whose producer refuses every record."""

    def topic(self, *args, **kwargs):
        return self

    async def send(self, **kwargs):
        raise ConnectionError("no broker")


def test_a_record_that_cannot_be_sent_is_logged_and_counted(caplog):
    trail = AuditTrail(lambda: FailingApp())
    before = metrics.AUDIT_FAILURES._value.get()
    record = {"at": "2026-01-01T00:00:00+00:00", "user": "alice", "method": "GET", "path": "/ranking", "status": 200}

    async def run():
        trail(record)
        while trail._pending:
            await asyncio.gather(*trail._pending)

    with caplog.at_level(logging.ERROR, logger="harmrank.audit"):
        asyncio.run(run())
    assert metrics.AUDIT_FAILURES._value.get() == before + 1
    assert any('"user":"alice"' in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_a_sent_record_waits_for_the_broker():
    sent = []

    class App:
        def topic(self, name, **kwargs):
            sent.append(name)
            return self

        async def send(self, value, **kwargs):
            sent.append(value)
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

    trail = AuditTrail(lambda: App())

    async def run():
        trail({"user": "bob"})
        await asyncio.gather(*trail._pending)

    before = metrics.AUDIT_FAILURES._value.get()
    asyncio.run(run())
    assert sent == ["harmrank-audit", b'{"user":"bob"}'] and metrics.AUDIT_FAILURES._value.get() == before
