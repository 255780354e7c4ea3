"""Who may use the operator pages, the API and the stats page: the admin token, as a
bearer token or as a signed session cookie. Imports no app module (app/main.py uses the
stats guard when it builds the web server)."""
from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web as aioweb

from runtime.settings import get_settings

COOKIE = "callbill_admin"
SECURITY = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"}
STATS_PATHS = ("/", "/assignment/")  # Faust's stats blueprint mounts here when enabled


def admin_token() -> bytes | None:
    s = get_settings()
    return s.admin_token.get_secret_value().encode() if s.admin_token else None


def _sign(actor: str) -> str:
    token = admin_token() or b""
    return hmac.new(token, b"callbill admin session:" + actor.encode(), hashlib.sha256).hexdigest()


def session_cookie(actor: str) -> str:
    return f"{quote(actor, safe='')}.{_sign(actor)}"


def actor_of(request: Any) -> str | None:
    """The operator behind a request: a bearer token (actor from X-Callbill-Actor) or a
    signed session cookie; None when neither is valid (or no admin token is set)."""
    token = admin_token()
    if not token:
        return None
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token):
        return (request.headers.get("X-Callbill-Actor") or "api").strip()[:100] or "api"
    raw = request.cookies.get(COOKIE, "")
    name, _, sig = raw.rpartition(".")
    if name and sig and hmac.compare_digest(sig, _sign(unquote(name))):
        return unquote(name)
    return None


@aioweb.middleware
async def guard_stats(request: aioweb.Request, handler: Any) -> aioweb.StreamResponse:
    """Faust's stats pages (enabled by CALLBILL_WEB_STATS) only for the admin token."""
    if request.path in STATS_PATHS and get_settings().web_stats and actor_of(request) is None:
        return aioweb.json_response({"error": "unauthorized"}, status=401, headers=SECURITY)
    return await handler(request)


