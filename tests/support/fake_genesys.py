"""A local fake of the Genesys Cloud API, and a scenario builder for test conversations.

The real service cannot run here, so this is the one place a fake is right. It follows
the platform SDK model shapes (WrapupCode, ExternalContact, AnalyticsConversation-
WithoutAttributes, AnalyticsConversationQueryResponse, the OAuth token response) and the
platform's behaviour that callbill must survive: 401 for a bad or expired token, 429 with
Retry-After, 5xx. It runs as an aiohttp app on 127.0.0.1 in a background thread, so plain
sync tests can use it.

`Scenario` describes one conversation once and renders it in every shape callbill can
receive it (EventBridge events, the analytics record, the guide's webhook payload), so
tests can check that all entry paths converge on the same interaction.
"""
from __future__ import annotations

from domain.assembly import seconds
import asyncio
import base64
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

API_PREFIX = "/api/v2/"
TOKEN_PATH = "/oauth/token"


def iso_ms(dt: datetime) -> str:
    """`2026-11-24T22:15:00.000Z`: how the analytics API writes times."""
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("interval times need an offset")
    return dt


def _error(status: int, code: str, message: str) -> web.Response:
    """The platform's ErrorBody shape."""
    return web.json_response(
        {"message": message, "code": code, "status": status, "contextId": str(uuid.uuid4()),
         "details": [], "errors": []},
        status=status,
    )


@dataclass
class _Fault:
    prefix: str
    status: int
    remaining: int
    retry_after: float | None


class FakeGenesys:
    """Genesys Cloud API (login + api on one local server). Set its state, then point a client at it."""

    def __init__(self, client_id: str = "test-client", client_secret: str = "test-secret-s3cr3t") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = 86400
        self.wrapup_codes: dict[str, str] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.responses: list[tuple[str, str, int]] = []  # (method, path, status) as answered
        self.queries: list[dict[str, Any]] = []  # bodies of analytics details queries
        self.token_requests = 0
        self.emails: list[dict[str, Any]] = []  # agentless email bodies accepted
        self.messages: list[dict[str, Any]] = []  # agentless message (SMS) bodies accepted
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def login_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeGenesys:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # surfaced to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-genesys", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"fake Genesys did not start: {failure[0] if failure else 'timeout'}")
        return self

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_get("/api/v2/routing/wrapupcodes/{codeId}", self._wrapup_code)
        app.router.add_get("/api/v2/externalcontacts/contacts/{contactId}", self._contact)
        app.router.add_post("/api/v2/analytics/conversations/details/query", self._query)
        app.router.add_get("/api/v2/analytics/conversations/{conversationId}/details", self._details)
        app.router.add_post("/api/v2/conversations/emails/agentless", self._agentless_email)
        app.router.add_post("/api/v2/conversations/messages/agentless", self._agentless_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> FakeGenesys:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------

    def fail_next(self, path_prefix: str, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """The next `count` requests whose path starts with `path_prefix` answer `status`."""
        with self._lock:
            self._faults.append(_Fault(path_prefix, status, count, retry_after))

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (as when one expires mid-run)."""
        with self._lock:
            self._tokens.clear()

    def count(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    # -- server ----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            self.requests.append((request.method, request.path))
            fault = next((f for f in self._faults if f.remaining > 0 and request.path.startswith(f.prefix)), None)
            if fault:
                fault.remaining -= 1
        if fault:
            resp = self._fault_response(fault)
        elif request.path.startswith(API_PREFIX) and not self._bearer_ok(request):
            resp = _error(401, "bad.credentials", "Invalid login credentials.")
        else:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                resp = _error(exc.status, "not.found" if exc.status == 404 else "bad.request", exc.reason)
        with self._lock:
            self.responses.append((request.method, request.path, resp.status))
        return resp

    @staticmethod
    def _fault_response(fault: _Fault) -> web.Response:
        if fault.status == 429:
            after = fault.retry_after if fault.retry_after is not None else 1
            resp = _error(429, "too.many.requests", f"Rate limit exceeded the maximum. Retry the request in [{after:g}] seconds")
            resp.headers["Retry-After"] = f"{after:g}"
            return resp
        resp = _error(fault.status, "internal.server.error" if fault.status >= 500 else "bad.request", "injected fault")
        if fault.retry_after is not None:
            resp.headers["Retry-After"] = f"{fault.retry_after:g}"
        return resp

    def _bearer_ok(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            expiry = self._tokens.get(token)
        return scheme.lower() == "bearer" and expiry is not None and time.monotonic() < expiry

    async def _token(self, request: web.Request) -> web.Response:
        with self._lock:
            self.token_requests += 1
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            user = password = ""
        if scheme.lower() != "basic" or (user, password) != (self.client_id, self.client_secret):
            return web.json_response({"error": "invalid_client", "description": "client not found"}, status=401)
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl
        return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl})

    async def _wrapup_code(self, request: web.Request) -> web.Response:
        code_id = request.match_info["codeId"]
        if code_id not in self.wrapup_codes:
            return _error(404, "not.found", "The requested resource was not found.")
        return web.json_response({
            "id": code_id,
            "name": self.wrapup_codes[code_id],
            "dateCreated": "2026-01-01T00:00:00.000Z",
            "createdBy": {"id": "00000000-0000-4000-8000-0000000000ad", "selfUri": "/api/v2/users/00000000-0000-4000-8000-0000000000ad"},
            "selfUri": f"/api/v2/routing/wrapupcodes/{code_id}",
        })

    async def _contact(self, request: web.Request) -> web.Response:
        contact_id = request.match_info["contactId"]
        if contact_id not in self.contacts:
            return _error(404, "not.found", "The requested resource was not found.")
        body = {"id": contact_id, "type": "Customer", "selfUri": f"/api/v2/externalcontacts/contacts/{contact_id}"}
        return web.json_response({**body, **self.contacts[contact_id]})

    async def _agentless_email(self, request: web.Request) -> web.Response:
        """AgentlessEmailSendRequestDto -> AgentlessEmailSendResponseDto, with the API's checks."""
        try:
            body = await request.json()
            to = body["toAddresses"]
            ok = (body.get("senderType") in ("Outbound", "System", "User") and isinstance(to, list) and len(to) == 1
                  and to[0].get("email") and (body.get("fromAddress") or {}).get("email")
                  and len(body.get("subject") or "") <= 400 and (body.get("textBody") or body.get("htmlBody")))
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            return _error(400, "bad.request", "Invalid agentless email request.")
        conversation = str(uuid.uuid4())
        with self._lock:
            self.emails.append(body)
        return web.json_response({
            "id": str(uuid.uuid4()), "conversationId": conversation, "senderType": body["senderType"],
            "fromAddress": body["fromAddress"], "toAddresses": body["toAddresses"], "subject": body.get("subject"),
            "dateCreated": iso_ms(datetime.now(timezone.utc)), "selfUri": f"/api/v2/conversations/emails/{conversation}"})

    async def _agentless_message(self, request: web.Request) -> web.Response:
        """SendAgentlessOutboundMessageRequest -> SendAgentlessOutboundMessageResponse."""
        try:
            body = await request.json()
            ok = (body.get("toAddressMessengerType") in ("sms", "whatsapp", "open")
                  and str(body.get("toAddress", "")).startswith("+") and body.get("fromAddress")
                  and 0 < len(body.get("textBody") or "") <= 765)
        except (ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            return _error(400, "bad.request", "Invalid agentless message request.")
        with self._lock:
            self.messages.append(body)
        conversation = str(uuid.uuid4())
        return web.json_response({
            "id": str(uuid.uuid4()), "conversationId": conversation, "fromAddress": body["fromAddress"],
            "toAddress": body["toAddress"], "messengerType": body["toAddressMessengerType"],
            "textBody": body["textBody"], "timestamp": iso_ms(datetime.now(timezone.utc)),
            "selfUri": f"/api/v2/conversations/messages/{conversation}"})

    async def _details(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversationId"]
        if conversation_id not in self.conversations:
            return _error(404, "not.found", "The requested resource was not found.")
        return web.json_response(self.conversations[conversation_id])

    async def _query(self, request: web.Request) -> web.Response:
        """Details query: conversations whose conversationEnd lies in [start, end), by conversationStart.

        A simplification of the real query (which matches any activity in the interval);
        callbill always asks for ended conversations, which is what this models.
        """
        try:
            body = await request.json()
            start_s, end_s = body["interval"].split("/")
            start, end = _parse_iso(start_s), _parse_iso(end_s)
            paging = body.get("paging") or {}
            size, number = int(paging.get("pageSize", 25)), int(paging.get("pageNumber", 1))
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, "bad.request", "Invalid query.")
        if not (1 <= size <= 100 and number >= 1 and start < end):
            return _error(400, "bad.request", "Invalid paging or interval.")
        if body.get("orderBy", "conversationStart") != "conversationStart":
            return _error(400, "bad.request", "The fake only orders by conversationStart.")
        with self._lock:
            self.queries.append(body)
        matching = [
            c for c in self.conversations.values()
            if c.get("conversationEnd") and start <= _parse_iso(c["conversationEnd"]) < end
        ]
        matching.sort(key=lambda c: (_parse_iso(c["conversationStart"]), c["conversationId"]),
                      reverse=body.get("order", "asc") == "desc")
        page = matching[(number - 1) * size: number * size]
        out: dict[str, Any] = {"totalHits": len(matching)}
        if page:  # the real API omits `conversations` on an empty page
            out["conversations"] = page
        return web.json_response(out)


# -- scenarios -------------------------------------------------------------------------

ORG_ID = "4a1b2c3d-0000-4000-8000-000000000001"
DIVISION_ID = "00000000-0000-4000-8000-0000000000d1"
_NS = uuid.UUID("5f0c1b1e-6a53-4c51-9d0e-ca11b111c0de")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _epoch_ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


@dataclass
class Leg:
    """One agent's part of the conversation; legs follow one another (a transfer)."""

    user_id: str
    queue_id: str
    talk_seconds: float
    held_seconds: float = 0
    wrapup_code_id: str | None = None
    wrapup_notes: str | None = None
    wrapup_seconds: float = 30
    agent_name: str | None = None

    @property
    def talk_ms(self) -> int:
        return _ms(self.talk_seconds)

    @property
    def held_ms(self) -> int:
        return _ms(self.held_seconds)


@dataclass
class Scenario:
    """One conversation, renderable as EventBridge events, an analytics record or a webhook."""

    conversation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    external_contact_id: str | None = None
    media_type: str = "VOICE"
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 22, 15, tzinfo=timezone.utc))
    agents: list[Leg] = field(default_factory=list)
    service_type: str | None = None
    org_id: str = ORG_ID

    def _id(self, *parts: object) -> str:
        """Stable ids: rendering the same scenario twice gives identical events (true repeats)."""
        return str(uuid.uuid5(_NS, "/".join([self.conversation_id, *map(str, parts)])))

    @property
    def customer_interacting_ms(self) -> int:
        return sum(leg.talk_ms + leg.held_ms for leg in self.agents)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(milliseconds=self.customer_interacting_ms)

    def leg_times(self) -> list[tuple[datetime, datetime]]:
        out, at = [], self.start
        for leg in self.agents:
            end = at + timedelta(milliseconds=leg.talk_ms + leg.held_ms)
            out.append((at, end))
            at = end
        return out

    # -- EventBridge -----------------------------------------------------------------

    def _envelope(self, kind: str, body: dict[str, Any], seq: int) -> dict[str, Any]:
        when = datetime.fromtimestamp(body["eventTime"] / 1000, tz=timezone.utc)
        return {
            "version": "0",
            "id": self._id("event", kind, seq),
            "detail-type": f"v2.detail.events.conversation.{{id}}.{kind}",
            "source": f"aws.partner/genesys.com/cloud/{self.org_id}/callbill",
            "account": "123456789012",
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "topicName": f"v2.detail.events.conversation.{self.conversation_id}.{kind}",
                "version": "2",
                "eventBody": body,
                "metadata": {"CorrelationId": self._id("correlation", kind, seq)},
                "timestamp": iso_ms(when),
            },
        }

    def eventbridge_events(self) -> list[dict[str, Any]]:
        """customer.end, then per leg user.end and (with a wrap-up code) acw, in time order."""
        contacts = [self.external_contact_id] if self.external_contact_id else []
        common = {"conversationId": self.conversation_id, "mediaType": self.media_type, "direction": "INBOUND"}
        events = []
        for i, (leg, (_, leg_end)) in enumerate(zip(self.agents, self.leg_times())):
            last = i == len(self.agents) - 1
            agent = {**common, "participantId": self._id("agent", i), "sessionId": self._id("agent-session", i),
                     "userId": leg.user_id, "queueId": leg.queue_id}
            events.append(self._envelope("user.end", {
                "eventTime": _epoch_ms(leg_end), **agent,
                "disconnectType": "PEER" if last else "TRANSFER",
                "interactingDurationMs": leg.talk_ms, "heldDurationMs": leg.held_ms, "alertingDurationMs": 0,
                "conversationExternalContactIds": contacts,
            }, i))
            if leg.wrapup_code_id is not None:
                acw = {"eventTime": _epoch_ms(leg_end + timedelta(seconds=leg.wrapup_seconds)), **agent,
                       "wrapupCode": leg.wrapup_code_id, "wrapupDurationMs": _ms(leg.wrapup_seconds),
                       "conversationExternalContactIds": contacts}
                if leg.wrapup_notes is not None:
                    acw["wrapupNotes"] = leg.wrapup_notes
                events.append(self._envelope("acw", acw, i))
        customer: dict[str, Any] = {
            "eventTime": _epoch_ms(self.end), **common,
            "participantId": self._id("customer"), "sessionId": self._id("customer-session"),
            "disconnectType": "CLIENT", "interactingDurationMs": self.customer_interacting_ms,
            "conversationExternalContactIds": contacts,
        }
        if self.external_contact_id:
            customer["externalContactId"] = self.external_contact_id
        events.append(self._envelope("customer.end", customer, 0))
        return sorted(events, key=lambda e: e["detail"]["eventBody"]["eventTime"])

    # -- Analytics -------------------------------------------------------------------

    def _talk_segments(self, leg: Leg, leg_start: datetime) -> list[dict[str, Any]]:
        """interact, hold in the middle of the talk, interact: covers the whole leg."""
        first = leg.talk_ms // 2 if leg.held_ms else leg.talk_ms
        parts = [("interact", first), ("hold", leg.held_ms), ("interact", leg.talk_ms - first)]
        out, at = [], leg_start
        for kind, ms in parts:
            if ms <= 0:
                continue
            end = at + timedelta(milliseconds=ms)
            out.append({"segmentStart": iso_ms(at), "segmentEnd": iso_ms(end), "segmentType": kind,
                        "queueId": leg.queue_id, "conference": False})
            at = end
        return out

    def analytics_conversation(self) -> dict[str, Any]:
        """AnalyticsConversationWithoutAttributes, as the details endpoints return it."""
        media = self.media_type.lower()  # analytics enums are lower case
        times = self.leg_times()
        customer_segments = [s for leg, (ls, _) in zip(self.agents, times) for s in self._talk_segments(leg, ls)]
        if customer_segments:
            customer_segments[-1]["disconnectType"] = "client"
        customer: dict[str, Any] = {
            "participantId": self._id("customer"),
            "purpose": "customer",
            "sessions": [{
                "sessionId": self._id("customer-session"), "mediaType": media, "direction": "inbound",
                "segments": customer_segments,
            }],
        }
        if self.external_contact_id:
            customer["externalContactId"] = self.external_contact_id
        participants = [customer]
        for i, (leg, (ls, le)) in enumerate(zip(self.agents, times)):
            segments = self._talk_segments(leg, ls)
            segments[-1]["disconnectType"] = "peer" if i == len(self.agents) - 1 else "transfer"
            metrics = [{"name": "tTalkComplete", "value": leg.talk_ms, "emitDate": iso_ms(le)}]
            if leg.held_ms:
                metrics.append({"name": "tHeldComplete", "value": leg.held_ms, "emitDate": iso_ms(le)})
            if leg.wrapup_code_id is not None:
                wrap_end = le + timedelta(seconds=leg.wrapup_seconds)
                wrap = {"segmentStart": iso_ms(le), "segmentEnd": iso_ms(wrap_end), "segmentType": "wrapup",
                        "queueId": leg.queue_id, "wrapUpCode": leg.wrapup_code_id, "conference": False}
                if leg.wrapup_notes is not None:
                    wrap["wrapUpNote"] = leg.wrapup_notes
                segments.append(wrap)
                metrics.append({"name": "tAcw", "value": _ms(leg.wrapup_seconds), "emitDate": iso_ms(wrap_end)})
            agent: dict[str, Any] = {
                "participantId": self._id("agent", i), "purpose": "agent", "userId": leg.user_id,
                "sessions": [{
                    "sessionId": self._id("agent-session", i), "mediaType": media, "direction": "inbound",
                    "segments": segments, "metrics": metrics,
                }],
            }
            if leg.agent_name:
                agent["participantName"] = leg.agent_name
            participants.append(agent)
        return {
            "conversationId": self.conversation_id,
            "conversationStart": iso_ms(self.start),
            "conversationEnd": iso_ms(self.end),
            "originatingDirection": "inbound",
            "divisionIds": [DIVISION_ID],
            "participants": participants,
        }

    # -- the guide's webhook ---------------------------------------------------------

    def webhook_payload(self, customer_id: str | None, billing_code_name: str) -> dict[str, Any]:
        """The flat payload; the agent named is the last one who wrapped up (else the last one)."""
        wrapped = [leg for leg in self.agents if leg.wrapup_code_id is not None]
        leg = (wrapped or self.agents or [None])[-1]
        return {
            "interactionId": self.conversation_id,
            "customerId": customer_id,
            "timestamp": iso_ms(self.start) if self.start.microsecond else
            self.start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "durationSeconds": seconds(self.customer_interacting_ms),  # half up, as the assembler
            "agentName": (leg.agent_name or leg.user_id) if leg else None,
            "serviceType": self.service_type,
            "billingCode": billing_code_name,
        }
