"""Who may read what on the worker's web port: one gate in front of every route.

Only `/healthz`, `/readyz` and `/metrics` answer without a token (SPEC §6). Every
other path, ours or one a library mounts, needs `Authorization: Bearer <token>`:
a missing or wrong token is 401, and while no token is configured every such
path is closed (403). The gate is an aiohttp middleware, so a route added later
(by us or by Faust) is closed until it is listed here as public.
"""
from __future__ import annotations

import hmac
from typing import Awaitable, Callable, Optional

from aiohttp import web

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access:
    """The configured token, and who a request's Authorization header names."""

    def __init__(self, shared_token: Optional[str]):
        self._shared = shared_token.encode() if shared_token else None

    @property
    def closed(self) -> bool:
        """No token is configured: nothing but the public paths answers."""
        return self._shared is None

    def user(self, authorization: str) -> Optional[str]:
        """"token" for the shared token, None for anything else (compared in constant time)."""
        scheme, _, given = authorization.partition(" ")
        if self._shared is None or scheme.lower() != "bearer":
            return None
        return "token" if hmac.compare_digest(given.strip().encode(), self._shared) else None


def _refusal(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="harmrank"'} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def gate(access: Access) -> Callable:
    """The aiohttp middleware that lets a request past only if its path is public or its token is good."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        if access.closed:
            return _refusal(403, "closed: no HARMRANK_API_TOKEN is configured on this worker")
        if access.user(request.headers.get("Authorization", "")) is None:
            return _refusal(401, "a valid 'Authorization: Bearer <token>' header is required")
        return await handler(request)

    return middleware
