"""`harmrank briefing`: the tasking meeting's briefing of SPEC §8, as JSON, Markdown or one printable page.

The command reads ``GET /briefing?list=&since=`` from a running worker's API with the bearer token,
checks the answer and renders it with :mod:`agents.commands.briefing_render`; every failure is a
one-line error and a non-zero exit. Self-contained: it needs the settings and the list-name rule only.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from schemas.lists import NAME_RE
from schemas.validate import parse_timestamp

from ..settings import Settings, add_common_args
from .briefing_render import (REASONS, BriefingError, _printable, check_briefing, format_score, format_time,
                              render_html, render_markdown)

__all__ = ["REASONS", "BriefingError", "check_briefing", "fetch_briefing", "format_score", "format_time", "main",
           "render_html", "render_markdown"]

FORMATS = ("json", "md", "html")
TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024


# --------------------------------------------------------------------------- the worker's API

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the bearer token goes to the worker named and nowhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"unexpected redirect to {newurl}", headers, fp)


def briefing_url(host: str, port: int, list_name: Optional[str], since: Optional[str]) -> str:
    """``http://host:port/briefing?list=..&since=..`` with the values encoded ('+' in an offset too)."""
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    query = urllib.parse.urlencode([(k, v) for k, v in (("list", list_name), ("since", since)) if v is not None])
    return f"http://{host}:{port}/briefing" + (f"?{query}" if query else "")


def fetch_briefing(url: str, token: str, timeout: float = TIMEOUT_SECONDS) -> dict:
    """GET the briefing with the token (no proxies, no redirects); BriefingError with one line on any failure."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                                   "Accept": "application/json"})
    try:
        with opener.open(request, timeout=timeout) as answer:
            body = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise BriefingError(_http_error(e)) from None
    except urllib.error.URLError as e:
        raise BriefingError(f"cannot reach the worker at {url}: {_printable(str(e.reason))}") from None
    except (socket.timeout, TimeoutError):
        raise BriefingError(f"no answer from the worker at {url} within {timeout:g} s") from None
    except (OSError, ValueError) as e:
        raise BriefingError(f"cannot read the briefing from {url}: {_printable(str(e))}") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise BriefingError(f"the worker's answer is larger than {MAX_ANSWER_BYTES} bytes")
    try:
        return check_briefing(json.loads(body))
    except (ValueError, RecursionError) as e:
        if isinstance(e, BriefingError):
            raise
        raise BriefingError(f"the worker's answer is not JSON: {_printable(str(e))[:80]}") from None


def _http_error(e: urllib.error.HTTPError) -> str:
    """One line for a refusal: the status, what it means here, and the worker's own words."""
    try:
        said = json.loads(e.read(65536) or b"{}").get("error", "")
    except (ValueError, AttributeError, OSError):
        said = ""
    said = f": {_printable(str(said))[:200]}" if said else ""
    meaning = {401: "the worker refused the token (set HARMRANK_API_TOKEN or --api-token)",
               403: "the worker refused the request",
               404: "not found (an unknown list?)"}.get(e.code, "the worker answered an error")
    return f"{meaning} (HTTP {e.code}){said}"


# --------------------------------------------------------------------------- the command

class _Parser(argparse.ArgumentParser):
    """A bad flag is one line on stderr and exit 2, like every other error of this command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {_printable(message)}\n")


def _parser() -> _Parser:
    parser = _Parser(prog="harmrank briefing",
                     description="The tasking meeting's briefing (SPEC §8) from a running worker's API.")
    parser.add_argument("--list", dest="list_name", metavar="NAME", help="the list (default: the worker's first)")
    parser.add_argument("--since", metavar="TS", help="RFC 3339 time (default: 28 days before the as_of)")
    parser.add_argument("--format", choices=FORMATS, default="md", help="json, md (default) or html (one page)")
    add_common_args(parser, only=["web_host", "web_port", "api_token"])
    return parser


def _request_url(args: argparse.Namespace) -> tuple[str, str]:
    """The briefing URL and the token from flags and settings; BriefingError for a bad one."""
    try:
        settings = Settings.from_env(web_host=args.web_host, web_port=args.web_port, api_token=args.api_token)
    except ValueError as e:
        raise BriefingError(str(e)) from None
    if args.list_name is not None and not NAME_RE.fullmatch(args.list_name):
        raise BriefingError(f"--list must be 1 to 32 of a-z, 0-9 and '-', got {_printable(repr(args.list_name))}")
    if args.since is not None:
        try:
            parse_timestamp(args.since)
        except ValueError as e:
            raise BriefingError(f"--since {_printable(repr(args.since))}: {e}") from None
    if not settings.api_token:
        raise BriefingError("no API token: set HARMRANK_API_TOKEN (or --api-token)")
    return briefing_url(settings.web_host, settings.web_port, args.list_name, args.since), settings.api_token


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        url, token = _request_url(args)
    except BriefingError as e:
        print(f"harmrank briefing: {e}", file=sys.stderr)
        return 2
    try:
        briefing = fetch_briefing(url, token)
        if args.format == "json":
            text = json.dumps(briefing, indent=2, ensure_ascii=True) + "\n"
        else:
            text = render_html(briefing) if args.format == "html" else render_markdown(briefing)
    except BriefingError as e:
        print(f"harmrank briefing: {e}", file=sys.stderr)
        return 1
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the reader went away (| head): nothing more to say to it
        sys.stdout = open(os.devnull, "w")
        return 1
    return 0
