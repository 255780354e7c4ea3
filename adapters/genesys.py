"""The Genesys Cloud platform API, as callbill needs it: wrap-up codes, external contacts,
conversation details and the analytics details query (for backfill).

One shared httpx client, an OAuth client-credentials token shared by every caller, and
retries that respect the platform's rate limits (429 + Retry-After) and back off on 5xx
and network errors, all inside a bounded total time, so a stuck Genesys never stalls a
stream agent forever. Errors name the endpoint template and the HTTP status; they never
carry the client secret, the token or a response body (which may hold personal data).
"""
from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from adapters.http import retry_after_seconds
from adapters.sending import SendRejected, SendRetryable, SendUnconfirmed

__all__ = [
    "REGIONS",
    "GenesysClient",
    "GenesysError",
    "WrapupCodes",
    "api_base",
    "login_base",
    "is_uuid",
    "iso_z",
]

# AWS region name -> Genesys Cloud domain (the platform SDKs' PureCloudRegionHosts).
_AWS_REGIONS: dict[str, str] = {
    "us-east-1": "mypurecloud.com",
    "us-east-2": "use2.us-gov-pure.cloud",  # FedRAMP
    "us-west-2": "usw2.pure.cloud",
    "ca-central-1": "cac1.pure.cloud",
    "eu-west-1": "mypurecloud.ie",
    "eu-west-2": "euw2.pure.cloud",
    "eu-central-1": "mypurecloud.de",
    "eu-central-2": "euc2.pure.cloud",
    "ap-south-1": "aps1.pure.cloud",
    "ap-northeast-1": "mypurecloud.jp",
    "ap-northeast-2": "apne2.pure.cloud",
    "ap-northeast-3": "apne3.pure.cloud",
    "ap-southeast-2": "mypurecloud.com.au",
    "sa-east-1": "sae1.pure.cloud",
    "me-central-1": "mec1.pure.cloud",
    "mx-central-1": "mxc1.pure.cloud",
    "ap-southeast-1": "apse1.pure.cloud",
}
# Either the domain itself or the AWS region name selects a region.
REGIONS: dict[str, str] = {**{d: d for d in _AWS_REGIONS.values()}, **_AWS_REGIONS}

TOKEN_PATH = "/oauth/token"
WRAPUP_CODE = "/api/v2/routing/wrapupcodes/{codeId}"
EXTERNAL_CONTACT = "/api/v2/externalcontacts/contacts/{contactId}"
CONVERSATION_DETAILS = "/api/v2/analytics/conversations/{conversationId}/details"
DETAILS_QUERY = "/api/v2/analytics/conversations/details/query"
AGENTLESS_EMAIL = "/api/v2/conversations/emails/agentless"
AGENTLESS_MESSAGE = "/api/v2/conversations/messages/agentless"
EMAIL_SUBJECT_MAX = 400
SMS_TEXT_MAX = 765

_BACKOFF_BASE = 0.2
_BACKOFF_CAP = 5.0
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _domain(region: str) -> str:
    key = region.strip().lower()
    try:
        return REGIONS[key]
    except KeyError:
        raise ValueError(
            f"unknown Genesys Cloud region {region!r}; use one of: {', '.join(sorted(REGIONS))}"
        ) from None


def api_base(region: str) -> str:
    """`https://api.<domain>` for a domain ("mypurecloud.ie") or AWS region ("eu-west-1")."""
    return f"https://api.{_domain(region)}"


def login_base(region: str) -> str:
    """`https://login.<domain>`: where the OAuth token comes from."""
    return f"https://login.{_domain(region)}"


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def iso_z(dt: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: the form the analytics API reads and writes."""
    if dt.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


OnStart = Callable[[], Awaitable[None]] | None  # awaited right before a send leaves

class GenesysError(Exception):
    """A Genesys call that failed for good. Carries the endpoint template, never ids or secrets."""

    def __init__(self, endpoint: str, status: int | None, detail: str = "") -> None:
        self.endpoint = endpoint
        self.status = status
        text = f"Genesys {endpoint} failed (status {status if status is not None else 'none'})"
        super().__init__(f"{text}: {detail}" if detail else text)


def _backoff(attempt: int) -> float:
    """Full jitter (AWS architecture blog): spreads retries of many workers apart."""
    return random.uniform(0.0, min(_BACKOFF_CAP, _BACKOFF_BASE * (2**attempt)))


def _retry_after(resp: httpx.Response) -> float | None:
    return retry_after_seconds(resp.headers.get("Retry-After"))


class GenesysClient:
    """Async Genesys Cloud API client (OAuth client credentials)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        region: str = "mypurecloud.com",
        api_url: str | None = None,
        login_url: str | None = None,
        timeout: float = 10.0,
        max_total_seconds: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.api_url = (api_url or api_base(region)).rstrip("/")
        self.login_url = (login_url or login_base(region)).rstrip("/")
        self.timeout = timeout
        self.max_total_seconds = max_total_seconds
        self._http = http or httpx.AsyncClient(timeout=timeout, headers={"Accept": "application/json"})
        self._owns_http = http is None
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()
        self.limiter: RateLimiter | None = None  # sends only (300 per minute by default)

    def __repr__(self) -> str:  # no secret, no token
        return f"GenesysClient(api_url={self.api_url!r}, client_id={self._client_id!r})"

    async def __aenter__(self) -> GenesysClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- API -------------------------------------------------------------------------

    async def wrapup_code(self, code_id: str) -> dict[str, Any] | None:
        """WrapupCode (`id`, `name`, …) or None when Genesys does not know the id."""
        return await self._get(WRAPUP_CODE, code_id)

    async def external_contact(self, contact_id: str) -> dict[str, Any] | None:
        """ExternalContact (names, emails, `cellPhone.e164`, `address`, …) or None."""
        return await self._get(EXTERNAL_CONTACT, contact_id)

    async def conversation_details(self, conversation_id: str) -> dict[str, Any] | None:
        """AnalyticsConversationWithoutAttributes for one conversation, or None."""
        return await self._get(CONVERSATION_DETAILS, conversation_id)

    @staticmethod
    def details_query_body(start: datetime, end: datetime, page_size: int, page_number: int) -> dict[str, Any]:
        """The analytics query for ended conversations in [start, end), oldest first."""
        return {
            "interval": f"{iso_z(start)}/{iso_z(end)}",
            "order": "asc",
            "orderBy": "conversationStart",
            "paging": {"pageSize": page_size, "pageNumber": page_number},
            "conversationFilters": [
                {
                    "type": "and",
                    "predicates": [{"type": "dimension", "dimension": "conversationEnd", "operator": "exists"}],
                }
            ],
        }

    async def query_conversations(
        self, start: datetime, end: datetime, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every ended conversation of the interval, page by page (the API caps pages at 100)."""
        if not 1 <= page_size <= 100:
            raise ValueError("page_size must be between 1 and 100")
        if end <= start:
            raise ValueError("end must be after start")
        page, seen = 1, 0
        while True:
            body = self.details_query_body(start, end, page_size, page)
            data = await self._call("POST", DETAILS_QUERY, self.api_url + DETAILS_QUERY, json=body) or {}
            conversations = data.get("conversations") or []
            for conversation in conversations:
                yield conversation
            seen += len(conversations)
            total = data.get("totalHits")
            if len(conversations) < page_size or (isinstance(total, int) and seen >= total):
                return
            page += 1

    # -- sending (agentless email and SMS) ---------------------------------------------

    async def send_agentless_email(self, from_email: str, from_name: str | None, to_email: str,
                                   subject: str, text: str, html: str, on_start: OnStart = None) -> dict[str, Any]:
        """One recipient per send (the API supports one), `senderType: Outbound`."""
        if len(subject) > EMAIL_SUBJECT_MAX:
            raise ValueError(f"subject longer than {EMAIL_SUBJECT_MAX} characters")
        body = {"senderType": "Outbound",
                "fromAddress": {"email": from_email, **({"name": from_name} if from_name else {})},
                "toAddresses": [{"email": to_email}], "subject": subject, "textBody": text, "htmlBody": html}
        return await self._send_once(AGENTLESS_EMAIL, body, on_start)

    async def send_agentless_sms(self, from_address: str, to_e164: str, text: str,
                                 on_start: OnStart = None) -> dict[str, Any]:
        if len(text) > SMS_TEXT_MAX:
            raise ValueError(f"SMS text longer than {SMS_TEXT_MAX} characters")
        body = {"fromAddress": from_address, "toAddress": to_e164, "toAddressMessengerType": "sms",
                "textBody": text}
        return await self._send_once(AGENTLESS_MESSAGE, body, on_start)

    async def _send_once(self, endpoint: str, body: dict[str, Any], on_start: OnStart = None) -> dict[str, Any]:
        """POST a send. Retried only while the platform surely did nothing (429, 503, a
        refused connection); a lost answer or another 5xx is SendUnconfirmed, never resent.
        `on_start` is awaited once the rate limit lets the send go (the caller's intent)."""
        deadline = time.monotonic() + self.max_total_seconds
        url = self.api_url + endpoint
        if self.limiter is not None:
            await self.limiter.acquire()
        if on_start is not None:
            await on_start()
        fresh, attempt = False, 0
        while True:
            try:
                token = await self._access_token(deadline)
            except GenesysError as e:
                raise SendRetryable(f"genesys token: status {e.status}") from None
            remaining = deadline - time.monotonic()
            try:
                resp = await self._http.post(url, json=body, headers={"Authorization": f"Bearer {token}"},
                                             timeout=min(self.timeout, max(remaining, 0.1)))
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                status, reason, delay = None, type(e).__name__, _backoff(attempt)
            except httpx.HTTPError as e:
                raise SendUnconfirmed(f"genesys {endpoint}: {type(e).__name__}") from None
            else:
                status = resp.status_code
                if resp.is_success:
                    return resp.json() if resp.content else {}
                if status == 401 and not fresh:
                    fresh = True
                    self._drop_token(token)
                    continue
                if status in (429, 503):
                    after = _retry_after(resp)
                    reason, delay = f"status {status}", after if after is not None else _backoff(attempt)
                elif status >= 500:
                    raise SendUnconfirmed(f"genesys {endpoint}: status {status}")
                else:
                    raise SendRejected(f"genesys {endpoint}: status {status}")
            attempt += 1
            if time.monotonic() + delay >= deadline:
                raise SendRetryable(f"genesys {endpoint}: {reason}", retry_after=delay)
            await asyncio.sleep(delay)

    # -- plumbing --------------------------------------------------------------------

    async def _get(self, template: str, ident: str) -> dict[str, Any] | None:
        if not ident:
            raise ValueError("an id is required")
        # quote: an id from an event must not be able to walk to another path
        url = self.api_url + template.format_map({_name(template): quote(ident, safe="")})
        return await self._call("GET", template, url)

    async def _call(self, method: str, endpoint: str, url: str, **kw: Any) -> dict[str, Any] | None:
        """One API call: bearer token, one retry with a fresh token on 401, None on 404."""
        deadline = time.monotonic() + self.max_total_seconds
        for fresh in (False, True):
            token = await self._access_token(deadline)
            resp = await self._send(method, endpoint, url, deadline, headers={"Authorization": f"Bearer {token}"}, **kw)
            if resp.status_code == 401 and not fresh:
                self._drop_token(token)
                continue
            if resp.status_code == 404:
                return None
            if resp.is_success:
                return resp.json() if resp.content else {}
            raise GenesysError(endpoint, resp.status_code)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, endpoint: str, url: str, deadline: float, **kw: Any) -> httpx.Response:
        """Send with retries on 429/5xx/network errors until `deadline`; other answers return."""
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GenesysError(endpoint, None, f"no answer within {self.max_total_seconds:g} s")
            status: int | None = None
            try:
                resp = await self._http.request(method, url, timeout=min(self.timeout, remaining), **kw)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                reason, delay = type(exc).__name__, _backoff(attempt)
            else:
                status = resp.status_code
                if status == 429:
                    after = _retry_after(resp)
                    reason, delay = "rate limited", after if after is not None else _backoff(attempt)
                elif status >= 500:
                    reason, delay = "server error", _backoff(attempt)
                else:
                    return resp
            attempt += 1
            if time.monotonic() + delay >= deadline:
                raise GenesysError(
                    endpoint, status, f"{reason}; gave up after {attempt} attempts in {self.max_total_seconds:g} s"
                )
            await asyncio.sleep(delay)

    async def _access_token(self, deadline: float) -> str:
        if self._token and time.monotonic() < self._token_until:
            return self._token
        async with self._token_lock:  # concurrent callers share one fetch
            if self._token and time.monotonic() < self._token_until:
                return self._token
            resp = await self._send(
                "POST",
                TOKEN_PATH,
                self.login_url + TOKEN_PATH,
                deadline,
                auth=(self._client_id, self._client_secret),
                data={"grant_type": "client_credentials"},
            )
            if resp.status_code != 200:
                raise GenesysError(TOKEN_PATH, resp.status_code, "token request refused")
            try:
                body = resp.json()
                token, expires_in = str(body["access_token"]), float(body.get("expires_in", 0))
            except (ValueError, KeyError, TypeError):
                raise GenesysError(TOKEN_PATH, resp.status_code, "malformed token response") from None
            # refresh shortly before expiry: 60 s early, or 10 % early for short-lived tokens
            self._token_until = time.monotonic() + expires_in - min(60.0, 0.1 * expires_in)
            self._token = token
            return token

    def _drop_token(self, token: str) -> None:
        if self._token == token:  # another caller may already have replaced it
            self._token, self._token_until = None, 0.0


class RateLimiter:
    """At most `rate` acquisitions per `per` seconds, evenly spaced (Genesys allows 300
    agentless sends a minute per organization; each worker takes its share)."""

    def __init__(self, rate: float, per: float = 60.0) -> None:
        self.interval = per / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


def _name(template: str) -> str:
    return template[template.index("{") + 1 : template.index("}")]


class WrapupCodes:
    """Wrap-up code id -> name: static mapping, then the API, cached with a TTL.

    Events carry the code's id; billing rules are written with names. Values that are not
    UUIDs (system codes like `ININ-WRAP-UP-TIMEOUT`, or a name already) are returned as
    they are: there is nothing to look up.
    """

    def __init__(
        self,
        client: GenesysClient | None,
        *,
        ttl: float = 3600,
        negative_ttl: float = 60,
        mapping: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._mapping = {k.strip().lower() if is_uuid(k.strip()) else k.strip(): v for k, v in (mapping or {}).items()}
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._inflight: dict[str, asyncio.Task[str | None]] = {}

    @classmethod
    def from_file(cls, path: str | Path, client: GenesysClient | None = None, ttl: float = 3600) -> WrapupCodes:
        """JSON object {id: name}; or what `GET /api/v2/routing/wrapupcodes` answers
        (`{"entities": [{"id", "name", …}], "pageCount", …}`, saved as it is: every page, or
        codes would be missing); or CSV lines `id,name` (blank lines, `#` comments, a header ok).
        ValueError names the file and the mistake."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot be read ({type(e).__name__})") from None
        mapping: dict[str, str] = {}
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
            if isinstance(data.get("entities"), list):
                page, pages = data.get("pageNumber"), data.get("pageCount")
                if isinstance(page, int) and isinstance(pages, int) and pages > 1:
                    raise ValueError(f"{path}: page {page} of {pages} of the wrap-up codes; ask for them all in "
                                     "one page (?pageSize=500) or save them as one object")
                for i, entity in enumerate(data["entities"]):
                    if not (isinstance(entity, dict) and isinstance(entity.get("id"), str)
                            and isinstance(entity.get("name"), str)):
                        raise ValueError(f"{path}: entities[{i}] needs an `id` and a `name`")
                    mapping[entity["id"]] = entity["name"]
            elif all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
                mapping = data
            else:
                raise ValueError(f"{path}: expected a JSON object of id -> name strings, or the Genesys API's "
                                 "{\"entities\": [{\"id\", \"name\"}]}")
        else:
            for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                if len(row) != 2:
                    raise ValueError(f"{path}:{lineno}: expected `id,name`")
                code, name = row[0].strip(), row[1].strip()
                if (code.lower(), name.lower()) == ("id", "name"):
                    continue
                mapping[code] = name
        return cls(client, ttl=ttl, mapping=mapping)

    async def name(self, code: str) -> str | None:
        code = code.strip()
        if not code:
            return None
        key = code.lower() if is_uuid(code) else code
        if key in self._mapping:
            return self._mapping[key]
        if not is_uuid(code):
            return code
        hit = self._cache.get(key)
        if hit is not None and self._clock() < hit[1]:
            return hit[0]
        if self._client is None:
            return None
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None))
        return await asyncio.shield(task)

    async def _fetch(self, key: str) -> str | None:
        assert self._client is not None
        found = await self._client.wrapup_code(key)  # GenesysError propagates: no guess is cached
        name = found.get("name") if found else None
        ttl = self._ttl if name else self._negative_ttl
        if len(self._cache) >= self._max_entries:
            now = self._clock()
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            while len(self._cache) >= self._max_entries:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (name, self._clock() + ttl)
        return name
