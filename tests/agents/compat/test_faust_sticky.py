"""agents.compat.faust_sticky: each process is dealt its home partitions, after a restart of the group or of one.

Faust's own assignor runs here as its leader runs it: each member's join metadata
goes to `PartitionAssignor.assign`, and each member takes its part with
`on_assignment`. A "restart" is a new app on the same data directory.
"""
from __future__ import annotations

import json
import logging

import faust
import pytest

from agents.compat import faust_sticky

PARTITIONS = 4
STAGE, SINGLE = "stage", "single"
#: The topics the members read: a stage topic and a table's changelog of PARTITIONS, and two of one partition.
TOPICS = {STAGE: PARTITIONS, "sticky-counts-changelog": PARTITIONS, SINGLE: 1, "sticky-top-changelog": 1}


@pytest.fixture(autouse=True)
def clean():
    faust_sticky.uninstall()
    yield
    faust_sticky.uninstall()


class _Cluster:
    """What the leader reads of the cluster: each topic's partitions."""

    def __init__(self, counts: dict):
        self.counts = counts

    def partitions_for_topic(self, topic: str):
        return set(range(self.counts[topic]))


def _app(data_dir, index: int) -> faust.App:
    """An app as the worker builds one: a table of PARTITIONS beside its stage topic, and a one-partition table."""
    app = faust.App("sticky", datadir=str(data_dir), topic_partitions=PARTITIONS, table_standby_replicas=0,
                    canonical_url=f"http://127.0.0.1:{6100 + index}", store="memory://")
    app.Table("counts", partitions=PARTITIONS)
    app.Table("top", partitions=1)
    return app


def _rebalance(apps: list) -> list:
    """One rebalance of `apps` as members (in this order); returns each one's active partitions by topic."""
    members = {f"member-{i}": app.assignor.metadata(set(TOPICS)) for i, app in enumerate(apps)}
    given = apps[0].assignor.assign(_Cluster(TOPICS), members)
    for i, app in enumerate(apps):
        app.assignor.on_assignment(given[f"member-{i}"])
    return [{t: sorted(p) for t, p in app.assignor._assignment.actives.items() if p} for app in apps]


def _is_a_whole_deal(held: list) -> bool:
    """Every partition of every topic is held by exactly one member."""
    return all(sorted(p for h in held for p in h.get(topic, [])) == list(range(count))
               for topic, count in TOPICS.items())


def _deal(first: tuple, singles_to_first: bool) -> list:
    """A whole deal of two members: `first` of each topic of PARTITIONS to the first member, the rest
    to the second, and the one-partition topics to one of them."""
    deal: list = [{}, {}]
    for topic, count in TOPICS.items():
        if count == 1:
            deal[0 if singles_to_first else 1][topic] = [0]
        else:
            deal[0][topic] = list(first)
            deal[1][topic] = [p for p in range(count) if p not in first]
    return deal


#: Every balanced deal of two members.
DEALS = [_deal(first, singles) for first in [(0, 1), (0, 2), (0, 3)] for singles in (True, False)]


def _restart(tmp_path, deal: list, order: tuple = (0, 1)) -> list:
    """Save `deal` in two data directories, then deal to new apps on them, joining in `order`;
    returns what each directory's process holds, in directory order."""
    dirs = [tmp_path / "p0", tmp_path / "p1"]
    for d, held in zip(dirs, deal):
        faust_sticky.save(d / "v1" / faust_sticky.ASSIGNMENT_FILE, held)
    got = _rebalance([_app(dirs[i], i) for i in order])
    return [got[order.index(i)] for i in range(2)]


@pytest.mark.parametrize("deal", DEALS)
def test_a_whole_restart_keeps_each_process_on_its_partitions_in_either_join_order(tmp_path, deal):
    assert faust_sticky.install()
    assert _is_a_whole_deal(deal)
    assert _restart(tmp_path / "a", deal) == deal
    assert _restart(tmp_path / "b", deal, order=(1, 0)) == deal
    saved = json.loads((tmp_path / "b" / "p1" / "v1" / faust_sticky.ASSIGNMENT_FILE).read_text())
    assert {t: p for t, p in saved["actives"].items() if p} == deal[1]  # each deal is saved for the next start


def test_without_the_work_around_the_saved_deal_changes_nothing(tmp_path):
    """The case the work-around exists for: Faust alone deals the same whatever each process held."""
    dealt = [_restart(tmp_path / str(i), deal) for i, deal in enumerate(DEALS)]
    assert _is_a_whole_deal(dealt[0])
    assert all(d == dealt[0] for d in dealt)
    assert sum(d == deal for d, deal in zip(dealt, DEALS)) == 1  # so five of the six deals move partitions


@pytest.mark.parametrize("back_first", [True, False])
def test_a_process_away_long_enough_to_lose_its_partitions_gets_them_back(tmp_path, back_first):
    """One process stops; the other takes its partitions; when it comes back, each goes home, in either
    join order (Faust's own claims of what each holds now settle the double claims by join order)."""
    assert faust_sticky.install()
    away, stays = _app(tmp_path / "p0", 0), _app(tmp_path / "p1", 1)
    homes = _rebalance([away, stays])
    assert _rebalance([stays]) == [{t: list(range(c)) for t, c in TOPICS.items()}]
    back = _app(tmp_path / "p0", 0)
    held = _rebalance([back, stays]) if back_first else _rebalance([stays, back])[::-1]
    assert held == homes


def test_a_new_process_gets_what_the_others_took_over(tmp_path):
    assert faust_sticky.install()
    gone, stays = _app(tmp_path / "p0", 0), _app(tmp_path / "p1", 1)
    homes = _rebalance([gone, stays])
    _rebalance([stays])
    held = _rebalance([stays, _app(tmp_path / "new", 2)])
    assert _is_a_whole_deal(held)
    assert (held[0][STAGE], held[1][STAGE]) == (homes[1][STAGE], homes[0][STAGE])  # one-partition topics: either


@pytest.mark.parametrize("home, dealt, expected", [
    (None, {STAGE: [1, 3]}, {STAGE: [1, 3]}),                           # the first deal
    ({STAGE: [1, 3]}, {STAGE: [0, 1, 2, 3]}, {STAGE: [1, 3]}),          # took over a leaver's: home stays
    ({STAGE: [1, 3], SINGLE: []}, {STAGE: [1, 3], SINGLE: [0]}, {STAGE: [1, 3], SINGLE: []}),
    ({STAGE: [0, 1, 2, 3]}, {STAGE: [2, 3]}, {STAGE: [2, 3]}),          # gave some to a newcomer
    ({STAGE: [1, 3]}, {STAGE: [1, 2]}, {STAGE: [1, 2]}),                # another deal
    ({STAGE: [1, 3]}, {STAGE: [3, 1]}, {STAGE: [1, 3]}),                # the same deal
    ({STAGE: []}, {STAGE: [2]}, {STAGE: []}),                           # held nothing; took over one
])
def test_the_home_after_a_deal(home, dealt, expected):
    assert faust_sticky.next_home(home, dealt) == expected


def test_two_processes_claiming_one_partition_are_settled_and_the_deal_stays_whole(tmp_path):
    """After a moved partition's old owner comes back, both files name it: one process gets it."""
    assert faust_sticky.install()
    dirs = [tmp_path / "p0", tmp_path / "p1"]
    everything = {t: list(range(c)) for t, c in TOPICS.items()}
    for d in dirs:
        faust_sticky.save(d / "v1" / faust_sticky.ASSIGNMENT_FILE, everything)
    held = _rebalance([_app(d, i) for i, d in enumerate(dirs)])
    assert _is_a_whole_deal(held)
    assert all(len(h.get(STAGE, [])) == PARTITIONS // 2 for h in held)


def test_a_claim_is_only_what_the_app_has_now(tmp_path):
    """Partitions beyond the topics' count, and topics the app no longer reads, claim nothing."""
    assert faust_sticky.install()
    faust_sticky.save(tmp_path / "v1" / faust_sticky.ASSIGNMENT_FILE,
                      {STAGE: [0, 1, 2, 3, 7], "gone": [0]})
    held = _rebalance([_app(tmp_path, 0)])
    assert held[0][STAGE] == [0, 1, 2, 3]
    assert "gone" not in held[0]


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"actives": {"stage": ["0"]}}',
                                     '{"actives": {"stage": 1}}', '{"actives": null}', "\udcff"])
def test_a_file_that_is_not_an_assignment_is_said_and_ignored(tmp_path, caplog, content):
    assert faust_sticky.install()
    path = tmp_path / "v1" / faust_sticky.ASSIGNMENT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="harmrank"):
        held = _rebalance([_app(tmp_path, 0)])
    assert held[0][STAGE] == list(range(PARTITIONS))  # the one process gets everything, as without a file
    assert "is not used" in caplog.text
    assert json.loads(path.read_text())["actives"][STAGE] == list(range(PARTITIONS))  # replaced by the new deal


def test_no_file_claims_nothing_and_a_failed_save_stops_nothing(tmp_path, caplog):
    assert faust_sticky.install()
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / faust_sticky.ASSIGNMENT_FILE).mkdir()  # cannot be replaced by a file
    app = _app(tmp_path, 0)
    with caplog.at_level(logging.WARNING, logger="harmrank"):
        held = _rebalance([app])
    assert held[0][STAGE] == list(range(PARTITIONS))
    assert "was not saved" in caplog.text
    assert faust_sticky.load(tmp_path / "absent.json", PARTITIONS) is None


def test_faust_s_join_metadata_is_the_one_the_work_around_writes_with_its_own_claim():
    """A Faust upgrade that changes how a member's join metadata is made fails here, not in a worker."""
    import inspect

    from faust.assignor.partition_assignor import PartitionAssignor

    body = [line.strip() for line in inspect.getsource(PartitionAssignor.metadata).splitlines()[1:] if line.strip()]
    assert body == ["return ConsumerProtocolMemberMetadata(", "self.version, list(topics), self._metadata.dumps()", ")"]


def test_a_claim_leaves_faust_s_own_assignment_as_it_is(tmp_path):
    assert faust_sticky.install()
    app = _app(tmp_path, 0)
    faust_sticky.save(tmp_path / "v1" / faust_sticky.ASSIGNMENT_FILE, {STAGE: [1]})
    sent = json.loads(app.assignor.metadata({STAGE}).user_data)
    assert sent["assignment"]["actives"] == {STAGE: [1]}
    assert app.assignor._assignment.actives == {} and app.assignor.assigned_actives() == set()


def test_install_is_once_and_uninstall_restores_faust():
    from faust.assignor.partition_assignor import PartitionAssignor

    originals = PartitionAssignor.metadata, PartitionAssignor.on_assignment
    assert faust_sticky.install() and not faust_sticky.install()
    assert faust_sticky.is_installed() and PartitionAssignor.metadata is not originals[0]
    faust_sticky.uninstall()
    assert (PartitionAssignor.metadata, PartitionAssignor.on_assignment) == originals
