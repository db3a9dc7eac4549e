"""HARMRANK_LISTS: a lists file that breaks a rule stops the worker and `harmrank rank` at start, naming
the line and the reason (exit 2); a good one gives the lists, the first being the default."""
from __future__ import annotations

import pytest

from agents.commands import rank as rank_command
from agents.commands import worker as worker_command
from agents.settings import Settings

BAD = """[[list]]
name = "vawg"

[[list]]
name = "rising"
recent_days = 400
factor = 2
"""
GOOD = """[[list]]
name = "assault"
offences = ["008/"]
window_days = 500
top_n = 5

[[list]]
name = "vawg"
"""


def test_a_good_file_gives_its_lists_and_the_retention_follows_the_longest_window(tmp_path):
    path = tmp_path / "lists.toml"
    path.write_text(GOOD)
    settings = Settings.from_env({"HARMRANK_LISTS": str(path)})
    assert [spec.name for spec in settings.list_specs] == ["assault", "vawg"]
    assert settings.retention_days == 590
    with pytest.raises(ValueError, match="longest list window"):
        Settings.from_env({"HARMRANK_LISTS": str(path), "HARMRANK_RETENTION_DAYS": "499"})


def test_without_a_file_there_is_one_list_from_the_settings():
    (spec,) = Settings.from_env({"HARMRANK_TOP_N": "7", "HARMRANK_WINDOW_DAYS": "30"}).list_specs
    assert (spec.name, spec.top_n, spec.window_days, spec.offences) == ("vawg", 7, 30, "vawg")


@pytest.mark.parametrize("main", [rank_command.main, worker_command.main])
def test_a_bad_file_stops_the_command_naming_the_line(tmp_path, capsys, monkeypatch, main):
    path = tmp_path / "lists.toml"
    path.write_text(BAD)
    feed = tmp_path / "feed.jsonl"
    feed.write_text("")
    monkeypatch.setenv("HARMRANK_LISTS", str(path))
    monkeypatch.setenv("HARMRANK_BROKER", "kafka://127.0.0.1:1")  # never reached
    assert main([str(feed)] if main is rank_command.main else []) == 2
    err = capsys.readouterr().err
    assert f"{path} line 6: recent_days (400) must be less than window_days (365)" in err, err
