"""The latency probes of bench_stream do what its latency figures rely on."""
from __future__ import annotations

from schemas.harm_table import load_harm_table
from streams.batch import rank_lines
from streams.simulate import dumps, generate
from tests.bench.bench_stream import with_probes


def test_each_probe_enters_the_top_n_caused_by_its_timed_report():
    city = list(generate(seed=2, events=20_000, days=30.0))
    events, timed = with_probes(city, rate=500.0, per_second=2.0)
    assert len(timed) == len(range(0, len(city) - 250, 250))
    assert len(events) == len(city) + 2 * len(timed)
    result = rank_lines((dumps(e) for e in events), load_harm_table(), top_n=10, keep_events=True,
                         clock_now=2**62)  # a top 10: full before the first probe
    entered = {e["cause"] for e in result.events if e["type"] == "ranking.entered"}
    exited = {e["cause"] for e in result.events if e["type"] == "ranking.exited"}
    assert timed <= entered  # every timed report moves a probe into the top N
    # ... and, once the top 10 is full (at the latest after ten probes), someone out
    assert {eid for eid in timed if int(eid.split("-")[1]) >= 10} <= exited
    first_reports = {eid.replace("-b", "-a") for eid in timed}
    assert not first_reports & (entered | exited)  # the first report alone moves nothing


def test_no_probes_leaves_the_feed_as_it_is():
    city = list(generate(seed=2, events=500, days=1.0))
    assert with_probes(city, 500.0, 0) == (city, set())
