"""Who may read what on the worker's web port: one gate in front of every route, and its audit trail.

Only `/healthz`, `/readyz` and `/metrics` answer without a token (SPEC §6). Every
other path, ours or one a library mounts, needs `Authorization: Bearer <token>`:
the shared `API_TOKEN` (user "token") or one of the named users of the
`API_TOKENS` file (SPEC §9). A missing or wrong token is 401, and while no token
is configured every such path is closed (403). Every request to such a path,
answered or refused, goes to the audit callback with the status it got. The gate
is an aiohttp middleware, so a route added later (by us or by Faust) is closed
until it is listed here as public.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Awaitable, Callable, Optional

from aiohttp import web

from schemas.events import us_to_iso

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SHARED_USER = "token"  # the user name of the shared API_TOKEN in the audit trail
UNKNOWN_USER = "-"
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,128}")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Audit = Callable[[dict], None]


def load_named_tokens(path: str) -> dict[str, bytes]:
    """The named users of an API_TOKENS file: name -> sha256 digest of his token.

    Lines are `name:<sha256 hex of the token>`; blank lines and `#` comments are
    allowed. Raises ValueError naming the file and line of the first fault (never
    echoing a hash), OSError when it cannot be read.
    """
    users: dict[str, bytes] = {}
    with open(path, "rb") as fh:
        for lineno, data in enumerate(fh, start=1):
            try:
                line = data.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                raise ValueError(f"{path}, line {lineno}: not UTF-8 text") from None
            if not line or line.startswith("#"):
                continue
            name, sep, digest = line.partition(":")
            name, digest = name.strip(), digest.strip()
            where = f"{path}, line {lineno}"
            if not sep:
                raise ValueError(f"{where}: expected 'name:<sha256 hex of the token>'")
            if not _NAME.fullmatch(name):
                raise ValueError(f"{where}: a user name is 1-128 of A-Z a-z 0-9 . _ @ -")
            if name in (SHARED_USER, UNKNOWN_USER):
                raise ValueError(f"{where}: the name {name!r} is kept for the audit trail")
            if name in users:
                raise ValueError(f"{where}: user {name!r} is named twice")
            if not _SHA256_HEX.fullmatch(digest):
                raise ValueError(f"{where}: the token hash of {name!r} must be 64 hex digits (sha256)")
            value = bytes.fromhex(digest)
            if value in users.values():
                raise ValueError(f"{where}: user {name!r} has the same token as another user")
            users[name] = value
    return users


class Access:
    """The configured tokens, and who a request's Authorization header names."""

    def __init__(self, shared_token: Optional[str], named: Optional[dict[str, bytes]] = None):
        # Every token is held as its sha256: a given token is hashed once and compared at one length.
        self._entries = [(name, digest) for name, digest in (named or {}).items()]
        if shared_token:
            self._entries.append((SHARED_USER, hashlib.sha256(shared_token.encode()).digest()))

    @classmethod
    def from_settings(cls, settings) -> "Access":
        named = load_named_tokens(settings.api_tokens) if settings.api_tokens else None
        return cls(settings.api_token, named)

    @property
    def closed(self) -> bool:
        """No token is configured: nothing but the public paths answers."""
        return not self._entries

    def user(self, authorization: str) -> Optional[str]:
        """"token" for the shared token, a name for a named user's, None for anything else.

        Compared in constant time: the given token is hashed once and compared with
        every entry, with no early exit, so the time taken tells nothing of which matched.
        """
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self._entries:
            return None
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogatepass")).digest()
        found = None
        for name, expected in self._entries:
            if hmac.compare_digest(digest, expected):
                found = name
        return found


def _refusal(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="harmrank"'} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def audit_record(request: web.Request, user: Optional[str], status: int) -> dict:
    """The record of SPEC §9: when, who, what, and the status answered (never the token)."""
    return {"at": us_to_iso(time.time_ns() // 1000), "user": user or UNKNOWN_USER, "method": request.method,
            "path": request.path, "status": status}


def gate(access: Access, audit: Optional[Audit] = None) -> Callable:
    """The aiohttp middleware that lets a request past only if its path is public or its token is good.

    `audit` gets the record of every request to a path that is not public, once its status is known.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        user = None
        status = 500  # if the handler fails with anything but an HTTP answer
        try:
            if access.closed:
                response = _refusal(403, "closed: no HARMRANK_API_TOKEN or HARMRANK_API_TOKENS is configured "
                                         "on this worker")
            else:
                user = access.user(request.headers.get("Authorization", ""))
                if user is None:
                    response = _refusal(401, "a valid 'Authorization: Bearer <token>' header is required")
                else:
                    response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if audit is not None:
                audit(audit_record(request, user, status))

    return middleware
