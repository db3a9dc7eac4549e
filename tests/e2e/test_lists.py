"""End-to-end: a real worker with a lists file (SPEC §7) agrees with `harmrank rank --list` for every list.

Each list's events on harm-ranking replay to exactly the batch top N of that list
(never more than N members, updates only of members), the newest entered or
updated event of each member carries his batch standing, and /ranking answers
the first list.
"""
from __future__ import annotations

import json
import time

import pytest

from agents.settings import Settings
from streams.simulate import generate

from .conftest import (OUTPUT_TOPIC, batch_rank, clean_env, publish_file, read_topic, replay_membership, run_cli,
                       write_feed)

pytestmark = pytest.mark.e2e

LISTS = """
[[list]]
name = "assault"
offences = ["008/", "105/"]
window_days = 120
top_n = 15

[[list]]
name = "vawg"
top_n = 30

[[list]]
name = "rising"
recent_days = 30
factor = 1.5
min_allegations = 1
top_n = 10
"""


@pytest.mark.parametrize("partitions", [1, 4])
def test_a_worker_with_a_lists_file_agrees_with_rank_list(partitions, own_broker, workers, tmp_path):
    lists_file = tmp_path / "lists.toml"
    lists_file.write_text(LISTS)
    specs = Settings.from_env({"HARMRANK_LISTS": str(lists_file)}).list_specs
    feed = write_feed(tmp_path / "feed.jsonl", generate(seed=77, events=3000, invalid_rate=0.0))
    expected = {spec.name: _rank_list(feed, lists_file, spec.name) for spec in specs}
    assert all(expected.values()), expected
    assert batch_rank(feed, lists=str(lists_file)) == expected["assault"]  # without --list: the first list

    worker = workers(own_broker, partitions=partitions, lists=str(lists_file)).start()
    worker.wait_ready()
    publish_file(own_broker, feed)
    worker.wait_ranking_equals(expected["assault"], timeout=90)

    deadline = time.monotonic() + 60
    while True:
        events = [json.loads(r.value) for r in read_topic(own_broker, OUTPUT_TOPIC, quiet=2.0, timeout=60.0)]
        got = {spec.name: replay_membership([e for e in events if e["list"] == spec.name], spec.top_n)
               for spec in specs}
        want = {name: {r["suspect_id"] for r in rows} for name, rows in expected.items()}
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert got == want
    for spec in specs:
        newest = {}
        for e in events:
            if e["list"] == spec.name and e["type"] != "ranking.exited":
                newest[e["suspect_id"]] = (e["score"], e["allegations"], e["victims"])
        for row in expected[spec.name]:
            assert newest[row["suspect_id"]] == (row["score"], row["allegations"], row["victims"]), (spec.name, row)
    _the_api_answers_every_list(worker, specs, expected, tmp_path)
    _a_members_new_report_is_an_update(own_broker, feed, expected["assault"][0]["suspect_id"], tmp_path)


def _a_members_new_report_is_an_update(broker, feed, member: str, tmp_path) -> None:
    """One more report of the first list's top member: he stays in, so `ranking.updated` names it."""
    extra = tmp_path / "extra.jsonl"
    at = json.loads(feed.read_text().splitlines()[-1])["at"]
    extra.write_text(json.dumps({"event_id": "e2e-extra-1", "type": "report.recorded", "at": at,
                                 "crime_ref": "CR-E2E-EXTRA", "offence_code": "105/01", "suspects": [member],
                                 "victims": [{"id": "V-E2E", "sex": "F"}]}) + "\n")
    publish_file(broker, extra)
    deadline = time.monotonic() + 60
    while True:
        events = [json.loads(r.value) for r in read_topic(broker, OUTPUT_TOPIC, quiet=2.0, timeout=60.0)]
        updates = [e for e in events if e["cause"] == "e2e-extra-1" and e["list"] == "assault"]
        if updates or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert [(e["type"], e["suspect_id"]) for e in updates] == [("ranking.updated", member)]


def _the_api_answers_every_list(worker, specs, expected: dict, tmp_path) -> None:
    """/lists, /ranking?list=, /suspects/{id} per list and /briefing?list=, and `harmrank briefing` (SPEC §6, §8)."""
    lists = worker.get_json("/lists")
    assert [x["name"] for x in lists["lists"]] == [s.name for s in specs] and lists["default"] == "assault"
    assert [x["top_n"] for x in lists["lists"]] == [s.top_n for s in specs]
    for spec in specs:
        ranking = worker.get_json(f"/ranking?list={spec.name}")
        assert (ranking["list"], ranking["entries"]) == (spec.name, expected[spec.name])
    assert worker.get("/ranking?list=nope", token=worker.token)[0] == 404
    top = expected["vawg"][0]
    doc = worker.get_json(f"/suspects/{top['suspect_id']}")
    vawg = next(s for s in doc["lists"] if s["list"] == "vawg")
    assert (vawg["rank"], vawg["score"], vawg["allegations"], vawg["eligible"]) == (1, top["score"],
                                                                                     top["allegations"], True)
    assert all(set(row["lists"]) <= {s.name for s in specs} for row in doc["allegations"] + doc["linked_offences"])
    for spec in specs:
        body = worker.get_json(f"/briefing?list={spec.name}&since=2000-01-01T00:00:00Z")
        assert body["list"] == spec.name and body["counts"]["members"] == len(expected[spec.name])
        assert [m["suspect_id"] for m in body["members"]] == [r["suspect_id"] for r in expected[spec.name]]
        assert all(m["new"] and m["entered_at"] for m in body["members"])
        assert body["counts"]["eligible"] >= body["counts"]["members"]
    assert worker.get("/briefing?since=yesterday", token=worker.token)[0] == 400
    env = clean_env(web_host="127.0.0.1", web_port=worker.port, api_token=worker.token)
    proc = run_cli(["briefing", "--list", "rising", "--format", "md"], env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert all(r["suspect_id"] in proc.stdout.decode() for r in expected["rising"])


def _rank_list(feed, lists_file, name: str) -> list:
    """`harmrank rank FEED --list NAME --json` with HARMRANK_LISTS."""
    proc = run_cli(["rank", feed, "--list", name, "--json"], clean_env(lists=str(lists_file)), timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return json.loads(proc.stdout)
