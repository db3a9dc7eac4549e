"""`harmrank briefing`: the renderers (agents.commands.briefing) and the command against a real local HTTP server."""
from __future__ import annotations

import copy
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import example, given, settings, strategies as st

from agents.commands import briefing as B
from tests.agents.briefing_sample import ODD_IDS, sample_briefing

TOKEN = "s3cret-token"


# --------------------------------------------------------------------------- checking the object

@pytest.mark.parametrize("change,words", [
    (lambda b: b.pop("members"), "the briefing's 'members' is missing or not a list"),
    (lambda b: b.update(exited={}), "the briefing's 'exited' is missing or not a list"),
    (lambda b: b.pop("counts"), "the briefing's 'counts' is missing or not an object"),
    (lambda b: b["counts"].pop("eligible"), "the briefing has no 'counts.eligible'"),
    (lambda b: b.pop("list"), "the briefing has no 'list'"),
    (lambda b: b["members"][3].pop("linked_offences"), "the briefing has no 'members[3].linked_offences'"),
    (lambda b: b["members"][0].update(score="12"), "the briefing's 'members[0].score' is not a number: '12'"),
    (lambda b: b["members"][0].update(score=float("nan")), "'members[0].score' is not a number: nan"),
    (lambda b: b["members"][0].update(score=float("inf")), "'members[0].score' is not a number: inf"),
    (lambda b: b["members"][0].update(score=10**16), "'members[0].score' is not a number"),
    (lambda b: b["members"][1].update(rank=True), "'members[1].rank' is not an integer: True"),
    (lambda b: b["members"][1].update(rank=1.5), "'members[1].rank' is not an integer: 1.5"),
    (lambda b: b["members"][2].update(new="yes"), "'members[2].new' is not true or false"),
    (lambda b: b["members"][2].update(suspect_id=7), "'members[2].suspect_id' is not a string"),
    (lambda b: b["exited"][1].update(at=5), "'exited[1].at' is not a time or null"),
    (lambda b: b["exited"].append("X"), "the briefing's 'exited[9]' is not an object"),
    (lambda b: b.update(counts=[]), "the briefing's 'counts' is missing or not an object"),
])
def test_check_briefing_names_the_first_fault(change, words):
    broken = sample_briefing()
    change(broken)
    with pytest.raises(B.BriefingError) as info:
        B.check_briefing(broken)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_check_briefing_takes_the_sample_and_a_worker_with_no_events_yet():
    assert B.check_briefing(sample_briefing()) == sample_briefing()
    empty = {"list": "vawg", "as_of": None, "since": None, "members": [], "exited": [],
             "counts": {"members": 0, "new": 0, "exited": 0, "eligible": 0}}
    assert "No members." in B.render_markdown(empty) and "No exits." in B.render_html(empty)
    with pytest.raises(B.BriefingError, match="not a JSON object"):
        B.check_briefing([])


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize("score,text", [(2419.0, "2,419"), (182.5, "182.5"), (0.1, "0.1"), (1825, "1,825"),
                                        (1234567.89, "1,234,567.89"), (0, "0"), (40.05, "40.05")])
def test_format_score(score, text):
    assert B.format_score(score) == text


@pytest.mark.parametrize("stamp,text", [("2025-03-01T10:00:00+00:00", "2025-03-01 10:00 UTC"),
                                        ("2025-03-01T10:00:59Z", "2025-03-01 10:00 UTC"),
                                        ("2025-03-01T10:59:59.999999Z", "2025-03-01 10:59 UTC"),
                                        ("2025-07-01T10:30:00.5+01:00", "2025-07-01 09:30 UTC"),
                                        ("2025-12-31T23:30:00-05:30", "2026-01-01 05:00 UTC"),
                                        ("0001-01-01T00:30:00+01:00", "0001-01-01T00:30:00+01:00"),
                                        (None, "-"), ("not a time\x1b[31m", "not a time\ufffd[31m")])
def test_format_time_is_in_utc_to_the_minute(stamp, text):
    assert B.format_time(stamp) == text
    assert B.format_time(stamp, zone=False) == text.removesuffix(" UTC")


# --------------------------------------------------------------------------- Markdown

def test_markdown_has_every_member_exit_and_count_with_new_ones_marked():
    briefing = sample_briefing()
    text = B.render_markdown(briefing)
    member_rows = [line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip()
                   .isdigit()]
    assert len(member_rows) == 100
    for row, member in zip(member_rows, briefing["members"]):
        cells = [c.strip() for c in row.replace("\\|", "\0").split("|")[1:-1]]
        assert cells[0] == str(member["rank"]) and (cells[2] == "**NEW**") is member["new"]
        assert cells[3] == B.format_score(member["score"]) and cells[6] == str(member["linked_offences"])
    for exit_ in briefing["exited"]:
        assert f"| {exit_['suspect_id']} | " in text and B.REASONS[exit_["reason"]] in text
    assert "**Members** 100 · **New since** 25 · **Exited since** 9 · **Eligible** 340" in text
    assert "as of 2025-03-01 10:00 UTC; changes since 2025-02-01 10:00 UTC" in text


def test_markdown_escapes_every_value():
    text = B.render_markdown(sample_briefing())
    assert "| S\\<b\\>x\\</b\\> |" in text and "| S\\&amp;1 |" in text and "| S\\|pipe\\| |" in text
    assert "| S\\*em\\*\\_u\\_ |" in text and "| S\\`tick\\` |" in text and "| S\\[a\\](b) |" in text
    hostile = sample_briefing(members=1, exits=0, list_name="x")
    hostile["members"][0]["suspect_id"] = "a\n# heading\x1b]0;title\x07"
    row = next(line for line in B.render_markdown(hostile).splitlines() if line.startswith("| 1 |"))
    assert "\n" not in row and "\x1b" not in row and "\x07" not in row and "\\# heading" in row


# --------------------------------------------------------------------------- HTML

class _Page(HTMLParser):
    """The tags, attributes and visible text of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text, self._skip = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "title")

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parsed(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def test_html_is_one_self_contained_page_with_no_scripts_or_external_assets():
    page = B.render_html(sample_briefing())
    p = parsed(page)
    assert page.startswith("<!DOCTYPE html>") and p.tags.count("html") == 1
    assert set(p.tags) <= {"html", "head", "meta", "title", "style", "body", "div", "h1", "h2", "p", "b", "span",
                           "table", "thead", "tbody", "tr", "th", "td"}
    assert {name for name, _ in p.attrs} <= {"lang", "charset", "http-equiv", "content", "class", "colspan"}
    lowered = page.lower()
    assert "url(" not in lowered and "@import" not in lowered and "http://" not in lowered and "//" not in \
        lowered.replace("<!doctype", "")
    assert "@page { size: a4" in lowered


def test_html_shows_every_member_exit_and_count_escaped():
    briefing = sample_briefing()
    p = parsed(B.render_html(briefing))
    cells = [t.strip() for t in p.text if t.strip()]
    for member in briefing["members"]:
        assert member["suspect_id"] in cells
    for exit_ in briefing["exited"]:
        assert exit_["suspect_id"] in cells and B.REASONS[exit_["reason"]] in cells
    assert cells.count("NEW") == 25 == briefing["counts"]["new"]
    assert [c for c in cells if c in ("100", "25", "9", "340")][:4] == ["100", "25", "9", "340"]
    assert set(ODD_IDS) <= set(cells)
    assert "2025-03-01 10:00 UTC" in cells and "2025-02-01 10:00 UTC" in cells


def test_html_escapes_a_hostile_value_into_text():
    hostile = sample_briefing(members=2, exits=1, list_name="x")
    hostile["members"][0]["suspect_id"] = "<script>alert(1)</script>"
    hostile["exited"][0]["reason"] = '"><img src=x onerror=alert(1)>'
    hostile["as_of"] = "</title><script>x</script>"
    p = parsed(B.render_html(hostile))
    assert "script" not in p.tags and "img" not in p.tags
    assert "<script>alert(1)</script>" in p.text and '"><img src=x onerror=alert(1)>' in p.text


@settings(deadline=None, max_examples=200)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
@example("0", "\u2028")  # a line separator: a line break to str.splitlines()
def test_any_id_and_reason_come_out_as_text(suspect_id, reason):
    briefing = sample_briefing(members=2, exits=1, list_name="x")
    briefing["members"][1]["suspect_id"] = suspect_id
    briefing["exited"][0]["reason"] = reason
    page = parsed(B.render_html(briefing))
    assert set(page.tags) <= {"html", "head", "meta", "title", "style", "body", "div", "h1", "h2", "p", "b", "span",
                              "table", "thead", "tbody", "tr", "th", "td"}
    assert B._printable(suspect_id) in page.text and B._printable(reason) in page.text
    rows = [line for line in B.render_markdown(briefing).splitlines() if line.startswith(("| 2 |", "| X0000 |"))]
    assert len(rows) == 2
    unescaped_pipes = [len(re.findall(r"(?<!\\)\|", row.replace("\\\\", ""))) for row in rows]
    assert unescaped_pipes == [9, 5]


# --------------------------------------------------------------------------- the command against a worker

class _Worker(BaseHTTPRequestHandler):
    """GET /briefing as the worker answers it: bearer token, ?list=, ?since=; some lists misbehave."""

    token = TOKEN
    briefings: dict = {}
    seen: list = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.seen.append((url.path, query, self.headers.get("Authorization")))
        name = query.get("list", ["vawg"])[0]
        if url.path != "/briefing":
            return self._json(404, {"error": "not found"})
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            return self._json(401, {"error": "a valid 'Authorization: Bearer <token>' header is required"})
        if name == "closed":
            return self._json(403, {"error": "closed: no HARMRANK_API_TOKEN is configured on this worker"})
        if name == "moved":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.end_headers()
            return None
        if name == "garbled":
            return self._raw(200, b"<html>not json")
        if name not in self.briefings:
            return self._json(404, {"error": f"unknown list {name!r}"})
        return self._json(200, self.briefings[name])

    def _json(self, status, body):
        self._raw(status, json.dumps(body).encode())

    def _raw(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def worker(monkeypatch):
    """A real HTTP server on 127.0.0.1 serving the sample; the command's settings point at it."""
    odd = sample_briefing(members=3, exits=1, list_name="odd")
    del odd["counts"]
    _Worker.briefings = {"vawg": sample_briefing(), "escalating": sample_briefing(members=5, exits=2,
                                                                                  list_name="escalating"),
                         "odd": odd}
    _Worker.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Worker)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv("HARMRANK_WEB_HOST", "127.0.0.1")
    monkeypatch.setenv("HARMRANK_WEB_PORT", str(server.server_address[1]))
    monkeypatch.setenv("HARMRANK_API_TOKEN", TOKEN)
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def run(capsys, *argv):
    code = B.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_format_prints_what_the_worker_answered(worker, capsys):
    code, out, err = run(capsys, "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == sample_briefing()
    path, query, auth = _Worker.seen[-1]
    assert (path, query, auth) == ("/briefing", {}, f"Bearer {TOKEN}")


def test_list_and_since_reach_the_worker_encoded(worker, capsys):
    code, out, err = run(capsys, "--list", "escalating", "--since", "2025-02-01T10:00:00+01:00", "--format", "md")
    assert code == 0, err
    assert _Worker.seen[-1][1] == {"list": ["escalating"], "since": ["2025-02-01T10:00:00+01:00"]}
    assert out == B.render_markdown(sample_briefing(members=5, exits=2, list_name="escalating"))


def test_html_format_prints_the_page(worker, capsys):
    code, out, err = run(capsys, "--format", "html")
    assert (code, out) == (0, B.render_html(sample_briefing()))


def test_flags_win_over_the_environment(worker, capsys, monkeypatch):
    port = worker.server_address[1]
    monkeypatch.setenv("HARMRANK_WEB_PORT", "1")
    monkeypatch.setenv("HARMRANK_API_TOKEN", "wrong")
    code, out, err = run(capsys, "--web-port", str(port), "--api-token", TOKEN, "--format", "json")
    assert code == 0 and json.loads(out)["list"] == "vawg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv,env,code,words", [
    (["--list", "nope"], {}, 1, "not found (an unknown list?) (HTTP 404): unknown list 'nope'"),
    ([], {"HARMRANK_API_TOKEN": "wrong"}, 1, "the worker refused the token (set HARMRANK_API_TOKEN or --api-token) "
                                            "(HTTP 401)"),
    (["--list", "closed"], {}, 1, "the worker refused the request (HTTP 403): closed: no HARMRANK_API_TOKEN"),
    (["--list", "moved"], {}, 1, "HTTP 302"),
    (["--list", "garbled"], {}, 1, "the worker's answer is not JSON"),
    (["--list", "odd"], {}, 1, "the briefing's 'counts' is missing or not an object"),
    (["--list", "Bad_Name"], {}, 2, "--list must be 1 to 32 of a-z, 0-9 and '-', got 'Bad_Name'"),
    (["--since", "yesterday"], {}, 2, "--since 'yesterday': not an RFC 3339 timestamp"),
    (["--since", "2025-02-30T00:00:00Z"], {}, 2, "not a valid date/time"),
    (["--format", "pdf"], {}, 2, "argument --format: invalid choice: 'pdf'"),
    (["--bogus"], {}, 2, "unrecognized arguments: --bogus"),
    ([], {"HARMRANK_WEB_PORT": "99999"}, 2, "HARMRANK_WEB_PORT must be a port number"),
    (["--web-port", "x"], {}, 2, "--web-port must be a port number"),
    ([], {"HARMRANK_API_TOKEN": ""}, 2, "no API token: set HARMRANK_API_TOKEN"),
])
def test_every_error_is_one_line_and_a_non_zero_exit(worker, capsys, monkeypatch, argv, env, code, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    got = exit_code(argv)
    out, err = capsys.readouterr()
    assert got == code and out == ""
    assert err.startswith("harmrank briefing: ") and err.count("\n") == 1 and words in err, err


def exit_code(argv) -> int:
    """What `harmrank briefing ARGV` exits with: main's return, or argparse's SystemExit code."""
    try:
        return B.main(argv)
    except SystemExit as e:
        return e.code


def test_an_unreachable_worker(capsys, monkeypatch):
    monkeypatch.setenv("HARMRANK_API_TOKEN", TOKEN)
    port = free_port()
    code, out, err = run(capsys, "--web-port", str(port))
    assert code == 1 and out == ""
    assert err == f"harmrank briefing: cannot reach the worker at http://127.0.0.1:{port}/briefing: " \
                  "[Errno 111] Connection refused\n"


def test_the_command_is_registered_in_harmrank(worker):
    env = {"HARMRANK_WEB_HOST": "127.0.0.1", "HARMRANK_WEB_PORT": str(worker.server_address[1]),
           "HARMRANK_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "agents.cli", "briefing", "--list", "escalating"],
                          capture_output=True, env=env, timeout=120)
    assert (done.returncode, done.stderr) == (0, b"")
    expected = B.render_markdown(sample_briefing(members=5, exits=2, list_name="escalating"))
    assert done.stdout.decode("utf-8") == expected
    missing = subprocess.run([sys.executable, "-m", "agents.cli", "briefing", "--list", "nope"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and missing.stdout == "" and missing.stderr.count("\n") == 1


def test_briefing_url_encodes_values_and_brackets_ipv6():
    assert B.briefing_url("::1", 6066, "vawg", "2025-01-01T00:00:00+01:00") == \
        "http://[::1]:6066/briefing?list=vawg&since=2025-01-01T00%3A00%3A00%2B01%3A00"
    assert B.briefing_url("w1", 80, None, None) == "http://w1:80/briefing"


def test_the_sample_is_not_changed_by_rendering():
    briefing = sample_briefing()
    before = copy.deepcopy(briefing)
    B.render_html(briefing), B.render_markdown(briefing)
    assert briefing == before
