"""End-to-end: the worker's HTTP API (SPEC §6) against a real worker and broker.

One worker (with a token) for the module on its own broker, fed a small synthetic feed,
and one worker started with no token at all, on another broker.
"""
from __future__ import annotations

import contextlib
import json
import re
from decimal import Decimal

import pytest

from streams.simulate import generate

from .conftest import TOKEN, Worker, batch_rank, publish_file, write_feed

pytestmark = pytest.mark.e2e


def _start_broker():
    from agents.local_broker import BrokerError, LocalBroker, free_port

    last = None
    for _ in range(3):
        lb = LocalBroker(port=free_port())
        try:
            return lb.start(timeout=15)
        except BrokerError as exc:
            last = exc
    pytest.fail(f"cannot start the tansu broker: {last}")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """(worker with token, worker without token, feed path, batch ranking)."""
    tmp = tmp_path_factory.mktemp("api")
    brokers, workers = [], []
    try:
        brokers.append(_start_broker())
        brokers.append(_start_broker())
        feed = write_feed(tmp / "feed.jsonl", generate(seed=31, events=3000, invalid_rate=0.005))
        expected = batch_rank(feed)
        assert expected, "the feed should rank someone"
        secured = Worker(brokers[0], tmp / "secured-data", tmp, name="secured")
        closed = Worker(brokers[1], tmp / "closed-data", tmp, name="closed", api_token=None)
        workers += [secured, closed]
        secured.start()
        closed.start()
        secured.wait_ready()
        closed.wait_ready()
        publish_file(brokers[0], feed)
        secured.wait_ranking_equals(expected, timeout=90)
        yield secured, closed, feed, expected
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                w.kill9()
        for b in brokers:
            with contextlib.suppress(Exception):
                b.stop()


PERSONAL = ["/ranking", "/suspects/{top}"]


def _path(template: str, expected: list) -> str:
    return template.format(top=expected[0]["suspect_id"])


@pytest.mark.parametrize("template", PERSONAL)
def test_personal_data_needs_the_token(api, template):
    secured, _, _, expected = api
    path = _path(template, expected)
    status, body = secured.get(path)
    assert status == 401, (status, body[:200])
    assert "error" in json.loads(body)
    status, body = secured.get(path, token="not-the-token")
    assert status == 401, (status, body[:200])
    status, body = secured.get(path, token=TOKEN + "x")
    assert status == 401, (status, body[:200])
    status, body = secured.get(path, token=TOKEN)
    assert status == 200, (status, body[:200])
    json.loads(body)


@pytest.mark.parametrize("template", PERSONAL)
def test_no_token_configured_closes_personal_data(api, template):
    _, closed, _, expected = api
    path = _path(template, expected)
    for token in (None, TOKEN, "anything"):
        status, body = closed.get(path, token=token)
        assert status == 403, (token, status, body[:200])
        assert "error" in json.loads(body)
    assert closed.get("/healthz")[0] == 200
    assert closed.get("/readyz")[0] == 200


def worker_routes() -> list:
    """(method, path) of every route the worker's web app serves, read from its router.

    The app is built in this process exactly as the worker builds it, so a view
    that Faust (or anyone) adds in a later version is listed here too.
    """
    from agents.settings import Settings
    from agents.topology import build_app
    from agents.web import install_views
    from schemas.harm_table import load_harm_table

    app, rt = build_app(Settings(api_token=TOKEN, data_dir="unused"), load_harm_table())
    install_views(app, rt)
    app.web.init_server()
    routes = []
    for route in app.web.web_app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path and route.method not in ("HEAD", "OPTIONS"):
            routes.append((route.method, re.sub(r"\{[^}]*\}", "S1", path)))
    return sorted(set(routes))


PUBLIC = {"/healthz", "/readyz", "/metrics"}


def test_every_route_but_health_and_metrics_needs_the_token(api):
    secured, closed, _, _ = api
    routes = worker_routes()
    paths = {path for _, path in routes}
    assert PUBLIC | {"/ranking", "/suspects/S1"} <= paths, routes
    for method, path in routes:
        for extra in ("", "/", "?x=1"):
            if method != "GET":
                continue
            status, body = secured.get(path + extra)
            if path in PUBLIC and extra != "/":
                assert status == 200, (path + extra, status, body[:200])
            else:
                assert status == 401, (path + extra, status, body[:200])
                assert closed.get(path + extra, token=TOKEN)[0] == 403, path + extra
    # Faust's own views of tables and partitions are not mounted at all, token or not.
    for path in ("/router/", "/table/ledger/p:S1/", "/graph/", "/stats/", "/performance/"):
        assert secured.get(path)[0] == 401, path
        assert secured.get(path, token=TOKEN)[0] == 404, path


def test_healthz_and_readyz(api):
    secured, _, _, _ = api
    status, body = secured.get("/healthz")
    assert status == 200, (status, body)
    status, body = secured.get("/readyz")
    assert status == 200, (status, body)


def test_suspect_breakdown_adds_up(api):
    secured, _, _, expected = api
    ranking = secured.ranking()
    assert ranking["entries"] == expected
    for entry in ranking["entries"][:5]:
        status, body = secured.get(f"/suspects/{entry['suspect_id']}", token=TOKEN)
        assert status == 200, (status, body[:300])
        doc = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        assert doc["suspect_id"] == entry["suspect_id"]
        allegations = doc["allegations"]
        assert sum((a["days"] for a in allegations), Decimal(0)) == doc["score"], doc
        assert doc["score"] == Decimal(json.dumps(entry["score"])), (doc["score"], entry)
        assert doc["allegations_in_window"] == entry["allegations"] == len(allegations), doc
        assert doc["rank"] == entry["rank"], (doc["rank"], entry)
        assert doc["victims"] == entry["victims"], (doc["victims"], entry)
        assert doc["eligible"] is True
        for a in allegations:
            assert {"crime_ref", "offence_code", "title", "days", "recorded_at", "vawg"} <= set(a), a
            assert a["vawg"] is True, a
        for linked in doc.get("linked_offences", []):
            assert linked["vawg"] is False, linked


def test_an_old_id_answers_for_the_record_it_was_merged_into(api):
    from schemas.harm_table import load_harm_table
    from streams.batch import rank_lines

    secured, _, feed, _ = api
    pipe = rank_lines(feed.read_bytes().splitlines(), load_harm_table()).pipeline
    checked = 0
    for line in feed.read_text().splitlines():
        event = json.loads(line) if '"suspects.merged"' in line else {}
        src = event.get("suspect_id")
        if not isinstance(src, str) or pipe.register.canonical(src) == src:
            continue
        canonical = pipe.register.canonical(src)
        summary = pipe.ledger.summary(canonical)
        if summary is None:
            continue
        status, body = secured.get(f"/suspects/{src}", token=TOKEN)
        assert status == 200, (src, status, body[:300])
        doc = json.loads(body)
        assert (doc["suspect_id"], doc["merged_from"]) == (canonical, src), doc
        assert (doc["score"], doc["allegations_in_window"]) == (summary.score / 100, summary.allegations), doc
        checked += 1
    assert checked >= 3, "the feed should merge some suspects who still have allegations"


def test_unknown_suspect_is_404_with_json_error(api):
    secured, _, _, _ = api
    status, body = secured.get("/suspects/S-NOBODY-XYZ", token=TOKEN)
    assert status == 404, (status, body[:300])
    doc = json.loads(body)
    assert isinstance(doc, dict) and doc.get("error"), doc


def test_metrics_parse_and_hold_no_personal_ids(api):
    from prometheus_client.parser import text_string_to_metric_families

    secured, _, feed, _ = api
    status, body = secured.get("/metrics")
    assert status == 200, status
    text = body.decode("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "harmrank_dead_letters" in families, sorted(families)
    ids = set(re.findall(r'"([SV]\d+)"', feed.read_text(encoding="utf-8")))
    assert len(ids) > 100
    leaked = sorted(i for i in ids if i in text)
    assert not leaked, f"/metrics mentions ids from the feed: {leaked[:20]}"
