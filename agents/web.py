"""The worker's HTTP API (SPEC §6): ranking, suspect breakdown, metrics, health.

`/ranking` and `/suspects/{id}` are personal data: the token gate in front of
every route (agents/access.py) lets only `/metrics`, `/healthz` and `/readyz`,
which hold none, answer without a token.
"""
from __future__ import annotations

from typing import Optional

from faust import web
from faust.exceptions import SameNode
from yarl import URL

from schemas.events import US_PER_DAY, us_to_iso
from streams.ledger import Ledger
from streams.messages import Summary
from streams.partitioning import partition_for
from streams.register import resolve

from . import metrics
from .compat import held_partitions, owner_url, route_request
from .faust_store import PartitionStore
from .topology import Runtime


def ranking_body(rt: Runtime) -> dict:
    rk = rt.ranker.ranker if rt.ranker_held else None
    entries = [] if rk is None else [
        {"rank": rank, "suspect_id": suspect, "score": s.score / 100, "allegations": s.allegations,
         "victims": s.victims} for rank, suspect, s in rk.ranking()]
    as_of = None if rk is None or not rk.as_of else us_to_iso(rk.as_of)
    return {"list": rt.settings.list_specs[0].name, "as_of": as_of, "entries": entries}


def _canonical(app, suspect_id: str) -> str:
    """The id his record lives under now (merges), from any register partition this worker holds.

    Every register partition keeps the whole alias forest (streams/register.py).
    """
    register_table = app.tables["register"]
    held = held_partitions(register_table)
    return resolve(PartitionStore(register_table, held[0]), suspect_id) if held else suspect_id


async def _remote_rank(app, view: web.View, request: web.Request, suspect_id: str) -> Optional[int]:
    """His rank from the worker that holds the ranker, when that is another one."""
    url = owner_url(app, app.tables["ranker"], 0)
    if url is None:
        return None
    try:
        async with app.http_client.get(str(URL(url).with_path("/ranking")),
                                       headers={"Authorization": request.headers.get("Authorization", "")}) as r:
            entries = (await r.json()).get("entries", [])
    except Exception:
        return None
    return next((e["rank"] for e in entries if e["suspect_id"] == suspect_id), None)


def suspect_body(app, rt: Runtime, suspect_id: str) -> Optional[dict]:
    """His standing explained allegation by allegation (the ledger's read model), or None if nobody knows him."""
    target = _canonical(app, suspect_id)
    merged = target != suspect_id
    settings = rt.settings
    partition = partition_for(target, settings.partitions)
    ledger_table = app.tables["ledger"]
    explained = None
    if partition in held_partitions(ledger_table):  # held here (else the owner answered)
        ledger = Ledger(PartitionStore(ledger_table, partition), lists=settings.list_specs)
        explained = ledger.explain(target)  # in the first list
    if explained is None and not merged:
        return None
    summary = explained.summary if explained is not None else Summary(0, 0, 0, 0)
    spec = settings.list_specs[0]
    window_us = spec.window_days * US_PER_DAY
    allegations, linked = [], []
    for crime_ref, a in (explained.allegations if explained is not None else []):
        entry = rt.harm.get(a.code)
        row = {"crime_ref": crime_ref, "offence_code": a.code, "title": entry.title if entry else "",
               "days": a.cents / 100, "recorded_at": us_to_iso(a.recorded_at), "vawg": a.vawg,
               "leaves_window_at": us_to_iso(a.recorded_at + window_us)}
        (allegations if spec.counts(a.code, a.vawg) else linked).append(row)
    ranker = rt.ranker.ranker if rt.ranker_held else None
    rank = ranker.book.rank(target) if ranker is not None and ranker.book.is_member(target) else None
    next_exit = allegations[0] if allegations else None
    return {
        "suspect_id": target,
        "merged_from": suspect_id if merged else None,
        "score": summary.score / 100,
        "allegations_in_window": summary.allegations,
        "list": spec.name,
        "eligible": explained.eligible if explained is not None else False,
        "min_allegations": spec.min_allegations,
        "rank": rank,
        "victims": summary.victims,
        "allegations": allegations,
        "linked_offences": linked,
        "next_to_leave": None if next_exit is None else {
            "crime_ref": next_exit["crime_ref"], "at": next_exit["leaves_window_at"],
            "score_after": (summary.score - int(round(next_exit["days"] * 100))) / 100},
        "as_of": us_to_iso(ranker.as_of) if ranker is not None and ranker.as_of else None,
    }


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

    @app.page("/ranking")
    class Ranking(web.View):
        async def get(self, request: web.Request) -> web.Response:
            routed = await _from_owner(app, self, request, "ranker", 0)
            return routed if routed is not None else self.json(ranking_body(rt))

    @app.page("/suspects/{suspect_id}")
    class Suspect(web.View):
        async def get(self, request: web.Request, suspect_id: str) -> web.Response:
            routed = await _from_owner(app, self, request, "ledger",
                                       partition_for(_canonical(app, suspect_id), rt.settings.partitions))
            if routed is not None:
                return routed
            body = suspect_body(app, rt, suspect_id)
            if body is not None and body["rank"] is None and not rt.ranker_held:
                body["rank"] = await _remote_rank(app, self, request, body["suspect_id"])
            if body is None:
                return self.json({"error": f"no suspect {suspect_id!r} has any allegation in the window"},
                                 status=404)
            return self.json(body)
