"""agents.compat.tansu_member_id: a restarted group forms in one round on the local tansu.

Two aiokafka members of a new group on the session's real broker are "killed"
(stopped without LeaveGroup, as a kill -9 leaves them) and two new ones start at
once. The old members are still in the group, so new ids cost a second round of
JoinGroup; with the saved ids the new members are the old ones, and one round does.
"""
from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator

from agents.compat import tansu_member_id
from agents.kafka_admin import ensure_topics

SESSION_MS, HEARTBEAT_MS = 6000, 1000


@pytest.fixture(autouse=True)
def clean():
    tansu_member_id.uninstall()
    yield
    tansu_member_id.uninstall()


@pytest.fixture
def join_rounds(monkeypatch):
    """How many times each group member sent JoinGroup, by id() of its coordinator."""
    rounds: dict = {}
    original = CoordinatorGroupRebalance.perform_group_join

    async def counted(self):
        rounds[id(self._coordinator)] = rounds.get(id(self._coordinator), 0) + 1
        return await original(self)

    monkeypatch.setattr(CoordinatorGroupRebalance, "perform_group_join", counted)
    return rounds


async def _started(bootstrap: str, topic: str, group: str, directories: list) -> list:
    """A member of `group` for each entry of `directories` (a directory: made with the work-around
    installed there, as each worker process has its own; None: without it), once each has partitions."""
    members = []
    for directory in directories:
        tansu_member_id.uninstall()
        if directory is not None:
            tansu_member_id.install(directory)
        members.append(AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                        session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                                        enable_auto_commit=False))
        await members[-1].start()  # its group member is made here, with the directory installed now
    while not all(m.assignment() for m in members):  # each getmany drives its member's group work
        await asyncio.gather(*(m.getmany(timeout_ms=200) for m in members))
    return members


async def _killed(members: list) -> None:
    """Stop members as a kill -9 leaves the group: without LeaveGroup."""
    async def no_leave(self):
        self.reset_generation()

    original = GroupCoordinator._maybe_leave_group
    GroupCoordinator._maybe_leave_group = no_leave
    try:
        for m in members:
            await m.stop()
    finally:
        GroupCoordinator._maybe_leave_group = original


def _restart(broker, join_rounds, directories: list) -> tuple:
    """Two members, killed, and two new ones at once: (old ids, new ids, JoinGroup rounds of each new one)."""
    topic, group = f"member-id-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap.split(","), {topic: 4})

    async def run():
        old = await _started(broker.bootstrap, topic, group, directories)
        old_ids = [m._coordinator.member_id for m in old]
        await _killed(old)
        join_rounds.clear()
        new = await _started(broker.bootstrap, topic, group, directories)
        try:
            return old_ids, [m._coordinator.member_id for m in new], [join_rounds[id(m._coordinator)] for m in new]
        finally:
            for m in new:
                await m.stop()

    return asyncio.run(run())


def test_without_the_work_around_new_ids_cost_a_second_round(broker, join_rounds):
    old_ids, new_ids, rounds = _restart(broker, join_rounds, [None, None])
    assert set(old_ids).isdisjoint(new_ids)
    assert max(rounds) >= 2


def test_members_that_rejoin_under_their_saved_ids_form_the_group_in_one_round(broker, tmp_path, join_rounds):
    directories = [tmp_path / "p0", tmp_path / "p1"]
    old_ids, new_ids, rounds = _restart(broker, join_rounds, directories)
    assert new_ids == old_ids
    assert rounds == [1, 1]
    assert [tansu_member_id.saved_member_id(next(d.iterdir())) for d in directories] == old_ids


@pytest.mark.parametrize("content", [b"", b"   \n", b"\xff\xfe", b"id\x00with a nul", b"x" * 300])
def test_a_file_that_holds_no_member_id_is_said_and_ignored(tmp_path, caplog, content):
    path = tansu_member_id.member_id_path(tmp_path, "harmrank")
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="harmrank"):
        assert tansu_member_id.saved_member_id(path) is None
    assert "is not used" in caplog.text


def test_ids_are_saved_whole_a_group_a_file_and_a_failed_save_is_only_said(tmp_path, caplog):
    intake, stages = (tansu_member_id.member_id_path(tmp_path / "d", g) for g in ("harmrank-intake", "harmrank"))
    tansu_member_id.save_member_id(intake, "aiokafka-0.14.0-1")
    tansu_member_id.save_member_id(stages, "faust-0.15.3-2")
    assert (tansu_member_id.saved_member_id(intake), tansu_member_id.saved_member_id(stages)) == \
        ("aiokafka-0.14.0-1", "faust-0.15.3-2")
    assert tansu_member_id.member_id_path(tmp_path, "a/../b").parent == tmp_path  # a group id names no other place
    assert tansu_member_id.saved_member_id(tmp_path / "absent") is None
    blocked = tansu_member_id.member_id_path(tmp_path / "d", "blocked")
    blocked.mkdir()
    with caplog.at_level(logging.WARNING, logger="harmrank"):
        tansu_member_id.save_member_id(blocked, "x")
    assert "was not saved" in caplog.text


def test_install_is_once_and_uninstall_restores_aiokafka(tmp_path):
    originals = GroupCoordinator.__init__, GroupCoordinator._on_join_complete
    assert tansu_member_id.install(tmp_path) and not tansu_member_id.install(tmp_path)
    assert tansu_member_id.is_installed() and GroupCoordinator.__init__ is not originals[0]
    tansu_member_id.uninstall()
    assert (GroupCoordinator.__init__, GroupCoordinator._on_join_complete) == originals
