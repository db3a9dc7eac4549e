"""The worker's HTTP API (SPEC §6): lists, rankings, a suspect's standing, the briefing, metrics, health.

Each view routes a request to the worker that holds the state it reads and
answers from `agents/read_model.py`. `/lists`, `/ranking`, `/suspects/{id}` and
`/briefing` are personal data: the token gate in front of every route
(agents/access.py) lets only `/metrics`, `/healthz` and `/readyz`, which hold
none, answer without a token.
"""
from __future__ import annotations

from typing import Optional

from faust import web
from faust.exceptions import SameNode
from yarl import URL

from schemas.validate import parse_timestamp
from streams.partitioning import partition_for

from . import metrics, read_model
from .compat import held_partitions, owner_url, route_request
from .topology import Runtime


async def _remote_json(app, request: web.Request, url: str, path: str, query: Optional[dict] = None):
    """The JSON answer of another worker's API (the caller's token goes with it), or None."""
    target = URL(url).with_path(path).with_query(query or {})
    try:
        async with app.http_client.get(str(target),
                                       headers={"Authorization": request.headers.get("Authorization", "")}) as r:
            return await r.json() if r.status == 200 else None
    except Exception:
        return None


async def _remote_ranks(app, request: web.Request, rt: Runtime, body: dict) -> None:
    """His rank in each list from the worker that holds the ranker, when that is another one."""
    url = owner_url(app, app.tables["ranker"], 0)
    if url is None:
        return
    for standing in body["lists"]:
        ranking = await _remote_json(app, request, url, "/ranking", {"list": standing["list"]}) or {}
        standing["rank"] = next((e["rank"] for e in ranking.get("entries", [])
                                 if e["suspect_id"] == body["suspect_id"]), None)
    body["rank"] = body["lists"][0]["rank"]


async def _linked_and_eligible(app, request: web.Request, rt: Runtime, name: str) -> tuple:
    """(suspect -> linked offences of the list's members, eligible suspects over every ledger partition)."""
    ranker = read_model.ranker_of(rt, name)
    table = app.tables["ledger"]
    held = set(held_partitions(table))
    linked: dict = {}
    for _, suspect, _ in ranker.ranking():
        ledger = read_model.ledger_of(app, rt, suspect)
        if ledger is not None:
            linked[suspect] = ledger.linked_offences(suspect, name)
            continue
        url = owner_url(app, table, partition_for(suspect, rt.settings.partitions))
        doc = await _remote_json(app, request, url, f"/suspects/{suspect}") if url else None
        linked[suspect] = next((s["linked_offences"] for s in (doc or {}).get("lists", []) if s["list"] == name), 0)
    eligible = rt.ledger.stats(name)[1]
    others = {owner_url(app, table, p) for p in range(rt.settings.partitions) if p not in held} - {None}
    for url in others:
        doc = await _remote_json(app, request, url, "/lists") or {}
        eligible += next((x["eligible_here"] for x in doc.get("lists", []) if x["name"] == name), 0)
    return linked, eligible


async def _from_owner(app, view: web.View, request: web.Request, table_name: str, partition: int):
    """The owner's answer when another worker holds `partition` of the table, else None (answer here).

    With several workers the ranker and each ledger partition live on one of
    them; any worker answers by proxying to the owner, as Faust's router does.
    """
    url = owner_url(app, app.tables[table_name], partition)
    if url is None:
        return None
    try:
        return await route_request(app, url, view, request)
    except SameNode:
        return None


def install_views(app, rt: Runtime) -> None:
    @app.page("/healthz")
    class Healthz(web.View):
        async def get(self, request: web.Request) -> web.Response:
            if rt.health.ok():
                return self.json({"status": "ok"})
            return self.json({"status": "failing", "stages": sorted(rt.health.failing)}, status=503)

    @app.page("/readyz")
    class Readyz(web.View):
        async def get(self, request: web.Request) -> web.Response:
            if rt.ready:
                return self.json({"status": "ready"})
            return self.json({"status": "recovering"}, status=503)

    @app.page("/metrics")
    class Metrics(web.View):
        async def get(self, request: web.Request) -> web.Response:
            body, content_type = metrics.render()
            return self.bytes(body, content_type=content_type.split(";")[0])

    default = rt.settings.list_specs[0].name
    names = {spec.name for spec in rt.settings.list_specs}

    def unknown(view: web.View, name: str) -> web.Response:
        return view.json({"error": f"no list {name!r} (GET /lists names them)"}, status=404)

    @app.page("/lists")
    class Lists(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return self.json(read_model.lists_body(rt))

    @app.page("/ranking")
    class Ranking(web.View):
        async def get(self, request: web.Request) -> web.Response:
            name = request.query.get("list", default)
            if name not in names:
                return unknown(self, name)
            routed = await _from_owner(app, self, request, "ranker", 0)
            return routed if routed is not None else self.json(read_model.ranking_body(rt, name))

    @app.page("/briefing")
    class Briefing(web.View):
        async def get(self, request: web.Request) -> web.Response:
            name = request.query.get("list", default)
            if name not in names:
                return unknown(self, name)
            try:
                since = parse_timestamp(request.query["since"]) if request.query.get("since") else None
            except ValueError as exc:
                return self.json({"error": f"since: {exc}"}, status=400)
            routed = await _from_owner(app, self, request, "ranker", 0)
            if routed is not None:
                return routed
            if not rt.ranker_held:
                return self.json({"error": "the ranking is not recovered yet"}, status=503)
            linked, eligible = await _linked_and_eligible(app, request, rt, name)
            return self.json(read_model.briefing(rt, name, since, eligible, lambda s: linked.get(s, 0)))

    @app.page("/suspects/{suspect_id}")
    class Suspect(web.View):
        async def get(self, request: web.Request, suspect_id: str) -> web.Response:
            routed = await _from_owner(app, self, request, "ledger",
                                       partition_for(read_model.canonical(app, suspect_id), rt.settings.partitions))
            if routed is not None:
                return routed
            body = read_model.suspect_body(app, rt, suspect_id)
            if body is None:
                return self.json({"error": f"no suspect {suspect_id!r} has any allegation in the window"},
                                 status=404)
            if not rt.ranker_held:
                await _remote_ranks(app, request, rt, body)
            return self.json(body)
