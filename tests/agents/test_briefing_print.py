"""The briefing page printed by a real headless Chromium to an A4 PDF, read back with pdftotext.

Needs Debian's ``chromium`` and ``poppler-utils`` (.ci/run installs them); a missing one fails the test.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from agents.commands.briefing import REASONS, format_score, render_html
from tests.agents.briefing_sample import sample_briefing


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (apt-get install chromium poppler-utils)"
    return path


def print_to_pdf(page: str, tmp_path) -> bytes:
    """Chromium's print of the page (its own profile, so parallel runs do not share one)."""
    html_path, pdf_path = tmp_path / "briefing.html", tmp_path / "briefing.pdf"
    html_path.write_text(page, encoding="utf-8")
    done = subprocess.run([tool("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
                           f"--print-to-pdf={pdf_path}", html_path.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and pdf_path.exists(), done.stderr[-2000:]
    return pdf_path.read_bytes()


def pdf_text(pdf: bytes, tmp_path, *args: str) -> str:
    path = tmp_path / "read.pdf"
    path.write_bytes(pdf)
    done = subprocess.run([tool("pdftotext"), *args, str(path), "-"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pdf_info(pdf: bytes, tmp_path) -> dict:
    path = tmp_path / "info.pdf"
    path.write_bytes(pdf)
    done = subprocess.run([tool("pdfinfo"), str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("print")
    briefing = sample_briefing(members=100, exits=9)
    return briefing, print_to_pdf(render_html(briefing), tmp_path), tmp_path


def test_every_member_and_exit_is_in_the_printed_pdf(printed):
    briefing, pdf, tmp_path = printed
    lines = {line.strip() for line in pdf_text(pdf, tmp_path).splitlines()}
    for member in briefing["members"]:
        assert member["suspect_id"] in lines, member["suspect_id"]
    for exit_ in briefing["exited"]:
        assert exit_["suspect_id"] in lines, exit_["suspect_id"]


def test_the_print_is_a4_with_the_marking_and_page_numbers_on_every_page(printed):
    briefing, pdf, tmp_path = printed
    info = pdf_info(pdf, tmp_path)
    pages = int(info["Pages"])
    assert "(A4)" in info["Page size"] and 2 <= pages <= 6
    for number in range(1, pages + 1):
        text = pdf_text(pdf, tmp_path, "-f", str(number), "-l", str(number))
        assert "OFFICIAL-SENSITIVE: PERSONAL DATA" in text and f"Page {number} of {pages}" in text
        assert "harmrank briefing: list vawg, as of 2025-03-01 10:00 UTC" in text


def test_rows_read_back_in_order_with_their_figures(printed):
    briefing, pdf, tmp_path = printed
    rows = [line.split() for line in pdf_text(pdf, tmp_path, "-layout").splitlines()]
    members = [row for row in rows if row[:1] and row[0].isdigit() and len(row) >= 8 and row[1].startswith("S")]
    assert [int(row[0]) for row in members] == list(range(1, 101))
    by_id = {m["suspect_id"]: m for m in briefing["members"]}
    for row in members:
        member = by_id[row[1]]
        new = row[2] == "NEW"
        assert new is member["new"]
        assert row[2 + new:6 + new] == [format_score(member["score"]), str(member["allegations"]),
                                        str(member["victims"]), str(member["linked_offences"])]
    text = " ".join(" ".join(row) for row in rows)
    for reason in {REASONS[e["reason"]] for e in briefing["exited"]}:
        assert " ".join(reason.split()[:3]) in text
