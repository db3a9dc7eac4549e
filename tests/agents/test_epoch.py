"""agents.epoch against a real tansu: the local state follows the broker, and old layouts are refused."""
from __future__ import annotations

import pytest

from agents import epoch
from tests.conftest import start_local_broker


@pytest.fixture
def own_broker():
    lb = start_local_broker()
    try:
        yield [lb.bootstrap]
    finally:
        lb.stop()


def _faust_state(data_dir):
    state = data_dir / "v1" / "tables"
    state.mkdir(parents=True)
    (state / "x.db").write_text("state")
    return state


def test_a_new_broker_gets_an_epoch_and_a_restart_resumes(own_broker, tmp_path):
    assert epoch.reconcile(own_broker, str(tmp_path)) == "new broker"
    recorded = epoch._read_broker_epoch(own_broker)
    assert recorded.endswith(f" layout={epoch.STATE_LAYOUT}")
    assert (tmp_path / epoch.EPOCH_FILE).read_text().strip() == recorded
    state = _faust_state(tmp_path)
    assert epoch.reconcile(own_broker, str(tmp_path)) == "resuming from local state"
    assert state.exists()


def test_local_state_of_a_broker_that_lost_its_data_is_discarded(own_broker, tmp_path):
    state = _faust_state(tmp_path)
    (tmp_path / epoch.EPOCH_FILE).write_text(f"0123 layout={epoch.STATE_LAYOUT}\n")
    assert "lost harmrank's topics" in epoch.reconcile(own_broker, str(tmp_path))
    assert not state.exists()


def test_a_broker_holding_an_older_layout_is_refused(own_broker, tmp_path):
    epoch._write_broker_epoch(own_broker, "abc123")  # how layout 1 wrote its epoch: no layout
    state = _faust_state(tmp_path)
    with pytest.raises(epoch.LayoutMismatch, match=f"layout 1.*layout {epoch.STATE_LAYOUT}"):
        epoch.reconcile(own_broker, str(tmp_path))
    assert state.exists()  # nothing is touched: the operator decides


def test_local_state_of_an_older_layout_is_rebuilt_from_the_broker(own_broker, tmp_path):
    epoch._write_broker_epoch(own_broker, f"e42 layout={epoch.STATE_LAYOUT}")
    state = _faust_state(tmp_path)
    (tmp_path / epoch.EPOCH_FILE).write_text("e42\n")  # same broker, written by layout 1
    assert "discarding" in epoch.reconcile(own_broker, str(tmp_path))
    assert not state.exists()
    assert (tmp_path / epoch.EPOCH_FILE).read_text().strip() == f"e42 layout={epoch.STATE_LAYOUT}"


@pytest.mark.parametrize("text,expected", [("abc", ("abc", 1)), ("abc layout=2", ("abc", 2)),
                                           ("abc layout=x", ("abc", 0)), (None, (None, epoch.STATE_LAYOUT))])
def test_parse(text, expected):
    assert epoch._parse(text) == expected
