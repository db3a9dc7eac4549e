"""The supervisor of HARMRANK_PROCESSES > 1 (agents/supervisor.py), without a broker.

Its children here are tiny scripts in place of `harmrank worker`: what is tested is
how it counts processes, what it hands a child, how it merges their metrics, and
what it does when a child exits. tests/e2e/test_processes.py runs the real thing.
"""
from __future__ import annotations

import asyncio
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents import metrics, supervisor
from agents.commands import worker as worker_command
from agents.settings import Settings
from agents.supervisor import PROCESSES_VAR, Supervisor, child_env, child_settings, merged_metrics, processes_of


def test_processes_default_to_one_per_core():
    assert processes_of(None, {}) == supervisor.default_processes() >= 1
    assert processes_of(None, {PROCESSES_VAR: " "}) == supervisor.default_processes()


def test_processes_from_the_flag_before_the_variable():
    assert processes_of(None, {PROCESSES_VAR: "3"}) == 3
    assert processes_of("1", {PROCESSES_VAR: "3"}) == 1


@pytest.mark.parametrize("flag, env, named", [(None, "0", PROCESSES_VAR), (None, "two", PROCESSES_VAR),
                                              (None, "-1", PROCESSES_VAR), ("1.5", None, "--processes")])
def test_a_bad_count_is_named(flag, env, named):
    with pytest.raises(ValueError, match=named):
        processes_of(flag, {} if env is None else {PROCESSES_VAR: env})


def test_a_bad_count_stops_the_command_with_the_usage_code(capsys, monkeypatch):
    monkeypatch.setenv(PROCESSES_VAR, "none")
    assert worker_command.main([]) == 2
    assert "HARMRANK_PROCESSES must be a positive integer, got 'none'" in capsys.readouterr().err


def test_a_child_gets_every_setting_its_own_directory_and_port_and_one_process():
    settings = Settings(broker="kafka://b1:9093", data_dir="/var/harmrank", top_n=7, web_port=8000)
    env = child_env(child_settings(settings, 1, 41001), {PROCESSES_VAR: "2", "HARMRANK_TOP_N": "5", "PATH": "/bin"})
    assert env[PROCESSES_VAR] == "1"
    assert env["HARMRANK_DATA_DIR"] == "/var/harmrank/p1"
    assert env["HARMRANK_WEB_PORT"] == "41001"
    assert env["HARMRANK_TOP_N"] == "7"  # the supervisor's resolved settings (a flag, say) win
    assert env["HARMRANK_BROKER"] == "kafka://b1:9093" and env["PATH"] == "/bin"
    assert Settings.from_env(env) == child_settings(settings, 1, 41001)


def test_the_public_metrics_hold_each_child_labelled_by_its_process():
    metrics.prime()
    metrics.EVENTS_CONSUMED.labels(type="report.recorded", outcome="accepted").inc(0)
    text = metrics.render()[0].decode()
    merged = merged_metrics({0: text, 1: text}).decode()
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    assert families["harmrank_child_restarts"].type == "counter"
    one = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}
    both = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    for (name, labels), value in one.items():
        for process in ("0", "1"):
            assert both[(name, tuple(sorted((*labels, ("process", process)))))] == value
    assert merged.count("# HELP harmrank_events_consumed_total ") == 1


def _run(processes: int, child_code: str, until=None) -> tuple[int, Supervisor]:
    """Run a supervisor whose children run `child_code`; stop it when `until(supervisor)` holds."""
    from agents.local_broker import free_port

    settings = Settings(web_port=free_port(), data_dir="/nonexistent-harmrank")
    sup = Supervisor(settings, processes, [], {}, command=[sys.executable, "-c", child_code])

    async def main():
        async def stop_when():
            while until is not None and not until(sup):
                await asyncio.sleep(0.05)
            if until is not None:
                sup.stopping.set()
        stopper = asyncio.create_task(stop_when())
        code = await asyncio.wait_for(sup.run(), timeout=60)
        stopper.cancel()
        return code

    return asyncio.run(main()), sup


def test_a_child_with_a_bad_setting_stops_every_process_with_the_usage_code():
    code, sup = _run(2, "import sys; sys.exit(2)")
    assert code == 2
    assert not any(c.up for c in sup.children)


def test_a_child_that_exits_is_restarted_and_counted():
    before = supervisor.RESTARTS._value.get()
    code, sup = _run(1, "import sys; sys.exit(1)", until=lambda s: supervisor.RESTARTS._value.get() >= before + 2)
    assert code == 0
    assert supervisor.RESTARTS._value.get() >= before + 2
    assert sup.children[0].failures >= 2  # each within a second: the backoff doubled


def test_a_stop_ends_the_children_that_run():
    code, sup = _run(2, "import time; time.sleep(600)",
                     until=lambda s: all(c.up for c in s.children))
    assert code == 0
    assert all(c.proc.returncode == -15 for c in sup.children)
