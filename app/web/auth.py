"""Who is behind a request to the review pages, the review API, the stats page or an
operator's document link, and what their role lets them do.

People sign in with their name and password (CALLBILL_OPERATORS_FILE, argon2id hashes)
and get a session: a random id in an HttpOnly, SameSite=Strict cookie. The server keeps
the session under the id's SHA-256 on the compacted callbill.sessions topic, which every
worker follows (tables/sessions.py): whichever worker serves the next page knows it, and
an expiry, a sign-out or `callbill operators revoke` ends it on all of them. Machines send
`Authorization: Bearer <client token>`, one token per client, each with its role.
CALLBILL_ADMIN_TOKEN (development only) is a bearer token recorded as client:admin-token.

The name recorded on an action is always the verified one: nothing a request says about
who it is (a body's "actor", a header) counts.
"""
from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import time
from collections import deque
from datetime import timedelta
from typing import Any, Awaitable, Callable

from aiohttp import web as aioweb

from adapters.operators import AccountsFile, Principal
from schemas.events import OperatorSession, utcnow
from tables.sessions import Sessions, session_key

COOKIE = "callbill_session"
SECURITY = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"}
STATS_PATHS = ("/", "/assignment/")  # Faust's stats blueprint mounts here when enabled
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
ADMIN = Principal("admin-token", "operator", "client")
# a session made on another worker reaches this one through the topic, usually in well under a second
SESSION_ARRIVAL = 3.0


class LoginThrottle:
    """Failed sign-ins counted per name and per client address over a sliding window.

    Per worker: with N workers behind a balancer an attacker gets at most N times the
    allowance, still far too few guesses against a 12-character password."""

    def __init__(self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        q = self.failures.setdefault(key, deque())
        while q and q[0] <= self.clock() - self.window:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> float:
        """Seconds until another attempt is allowed for every key (0: now)."""
        wait = 0.0
        for key in keys:
            q = self._recent(key)
            if len(q) >= self.attempts:
                wait = max(wait, q[0] + self.window - self.clock())
        return wait

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._recent(key).append(self.clock())
        if len(self.failures) > 10_000:  # forget quiet keys rather than grow without bound
            for key in [k for k, q in self.failures.items() if not self._recent(k)]:
                del self.failures[key]

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)


class Gate:
    """The one place that answers "who is this, and may they act"."""

    def __init__(self, settings: Any, sessions: Sessions, clock: Callable[[], Any] = utcnow) -> None:
        self.settings = settings
        self.sessions = sessions
        self.accounts = AccountsFile(settings.operators_file)
        self.admin = settings.admin_token.get_secret_value().encode() if settings.admin_token else None
        self.ttl = timedelta(hours=settings.session_hours)
        self.throttle = LoginThrottle(settings.login_attempts, settings.login_window)
        self.clock = clock
        # writes a session record (key, value or None) to callbill.sessions and waits for the ack
        self.send: Callable[[bytes, bytes | None], Awaitable[Any]] | None = None

    async def principal(self, request: Any) -> Principal | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:].strip()
            if self.admin and hmac.compare_digest(token.encode(), self.admin):
                return ADMIN
            return self.accounts.get().client(token) if token else None
        sid = request.cookies.get(COOKIE, "")
        if not SESSION_ID.fullmatch(sid):
            return None
        session = self.sessions.get(sid) or await self._arriving(sid)
        if session is None or session.expiresAt <= self.clock():
            return None
        return self.accounts.get().operator(session.name, session.issuedAt)

    async def _arriving(self, sid: str) -> OperatorSession | None:
        """A session just made on another worker may not have reached this one yet."""
        deadline = time.monotonic() + SESSION_ARRIVAL
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if (session := self.sessions.get(sid)) is not None:
                return session
        return None

    async def sign_in(self, name: str, password: str, address: str) -> tuple[str | None, float]:
        """A new session id, or None and the seconds to wait before trying again (0: wrong)."""
        keys = (f"name:{name.lower()}", f"address:{address}")
        wait = self.throttle.retry_after(*keys)
        if wait > 0:
            return None, wait
        accounts = self.accounts.get()
        # argon2 takes tens of milliseconds of CPU: off the event loop, which carries the pipeline
        who = await asyncio.get_running_loop().run_in_executor(None, accounts.sign_in, name, password)
        if who is None:
            self.throttle.failed(*keys)
            return None, 0.0
        self.throttle.succeeded(keys[0])
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        await self._write(session_key(sid), OperatorSession(name=who.name, issuedAt=now, expiresAt=now + self.ttl))
        await self._forget_expired(now)
        return sid, 0.0

    async def sign_out(self, request: Any) -> None:
        sid = request.cookies.get(COOKIE, "")
        if SESSION_ID.fullmatch(sid) and self.sessions.get(sid) is not None:
            await self._write(session_key(sid), None)

    async def _write(self, key: str, session: OperatorSession | None) -> None:
        if self.send is None:
            raise RuntimeError("the gate has no sessions topic (app/factory.py binds it)")
        value = session.model_dump_json().encode() if session else None
        await self.send(key.encode(), value)
        self.sessions.apply(key, value)  # this worker knows at once; the others through the topic

    async def _forget_expired(self, now: Any) -> None:
        """Tombstones for a few ended sessions, so the compacted topic keeps only live ones."""
        for key in [k for k, s in self.sessions.entries.items() if s.expiresAt <= now][:50]:
            await self._write(key, None)

    def stats_guard(self) -> Any:
        @aioweb.middleware
        async def guard(request: aioweb.Request, handler: Any) -> aioweb.StreamResponse:
            """Faust's stats pages (enabled by CALLBILL_WEB_STATS) only for a verified principal."""
            if request.path in STATS_PATHS and self.settings.web_stats and await self.principal(request) is None:
                return aioweb.json_response({"error": "unauthorized"}, status=401, headers=SECURITY)
            return await handler(request)

        return guard
