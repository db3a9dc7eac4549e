"""Faults for the e2e tests, injected into a worker subprocess whose PYTHONPATH starts with this directory.

Python imports `sitecustomize` at start; this one patches the worker's modules as they
are imported, as the test's environment asks (no production code knows of it):
- TEST_FAULT_STAGE=<register|ledger|ranker>, TEST_FAULT_FAILS=<n>: the stage's `work`
  fails its first n calls, after doing the batch's work, so the retry must start from
  what the stores hold, not from what the failed try changed in memory.
- TEST_FAULT_RETRY_FIRST_S=<s>: the stage runner's first backoff (it doubles), so the
  failing spell lasts long enough to be seen on /healthz.
- TEST_FAULT_KILL_AFTER_LOCAL_WRITE=<table>:<n>: SIGKILL the process when the n-th batch
  of that table's local RocksDB writes is about to go to its changelog.
"""
from __future__ import annotations

import importlib.abc
import os
import signal
import sys

STAGE_CLASSES = {"register": ("streams.stages.register", "RegisterStage"),
                 "ledger": ("streams.stages.ledger", "LedgerStage"),
                 "ranker": ("streams.stages.ranker", "RankerStage")}


class InjectedFault(RuntimeError):
    """The failure a test asked for."""


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Runs `patches[name](module)` right after module `name` is first executed."""

    def __init__(self, patches: dict):
        self.patches = patches

    def find_spec(self, name, path, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        patch, execute = self.patches.pop(name), spec.loader.exec_module

        def exec_module(module):
            execute(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


def failing_work(stage: str, fails: int):
    """Patch the stage class so that its first `fails` batches raise after being worked."""
    calls = {"n": 0}

    def patch(module) -> None:
        cls = getattr(module, STAGE_CLASSES[stage][1])
        work = cls.work

        def work_then_fail(self, *args, **kwargs):
            done = work(self, *args, **kwargs)
            calls["n"] += 1
            if calls["n"] <= fails:
                raise InjectedFault(f"{stage}: injected failure {calls['n']} of {fails}")
            return done

        cls.work = work_then_fail
    return patch


def slower_retries(first_s: float):
    def patch(module) -> None:
        module.RETRY_FIRST_S = first_s
    return patch


def kill_before_changelog(table: str, nth: int):
    """Patch `send_records` (the changelog send that follows a local write) to SIGKILL at the n-th for `table`."""
    calls = {"n": 0}

    def patch(module) -> None:
        send_records = module.send_records

        async def send_or_die(app, topic, partition, records):
            if topic.endswith(f"-{table}-changelog"):
                calls["n"] += 1
                if calls["n"] == nth:
                    print(f"TEST_FAULT_KILL_AFTER_LOCAL_WRITE: killing the worker after {table}'s local write {nth}",
                          file=sys.stderr, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            return await send_records(app, topic, partition, records)

        module.send_records = send_or_die
    return patch


def install(env) -> None:
    patches = {}
    if env.get("TEST_FAULT_STAGE"):
        stage = env["TEST_FAULT_STAGE"]
        patches[STAGE_CLASSES[stage][0]] = failing_work(stage, int(env.get("TEST_FAULT_FAILS", "1")))
    if env.get("TEST_FAULT_RETRY_FIRST_S"):
        patches["agents.stage_runner"] = slower_retries(float(env["TEST_FAULT_RETRY_FIRST_S"]))
    if env.get("TEST_FAULT_KILL_AFTER_LOCAL_WRITE"):
        table, _, nth = env["TEST_FAULT_KILL_AFTER_LOCAL_WRITE"].partition(":")
        patches["agents.faust_store"] = kill_before_changelog(table, int(nth or 1))
    if patches:
        sys.meta_path.insert(0, PatchOnImport(patches))


install(os.environ)
