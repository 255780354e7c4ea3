"""A reference ERP: the invoice API of the guide, for tests, the demo and the benchmarks.

`POST /v1/billing/generate-invoice` issues invoices; `POST /v1/billing/credit-notes` credits
one of them (never more than what is left of it), under the same idempotency rules.

Behaves like a careful real one: Stripe-style idempotency (the same Idempotency-Key gets
the first stored answer; the same key with a different body gets 409), 400 with an
`error_code` for a bad currency, an unknown customer or amounts that do not add up, and
knobs for what the pipeline must survive: latency, a 5xx rate, outage windows, 429s and
keys that always fail. `GET /_stats` counts creates per key; `POST /_control` turns the
knobs at run time.

    python -m devtools.reference_erp --port 8070 --latency-ms 20 --outage 30:60
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from aiohttp import web

from domain.money import CURRENCIES, MoneyError, parse_amount, round_money


@dataclass
class Behaviour:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    outages: list[tuple[float, float]] = field(default_factory=list)  # monotonic (start, end)
    retry_after: float | None = None  # sent with 503/429 when set
    fail_keys: set[str] = field(default_factory=set)
    rate_limit_keys: set[str] = field(default_factory=set)  # answered 429 (with retry_after)
    known_customers: set[str] | None = None  # None: any customer reference is known
    currencies: set[str] | None = None  # None: every ISO 4217 code
    # a misbehaving ERP: per Idempotency-Key, fields that replace its 201 answer's
    # (a number that is no identifier, amounts that do not add up, another currency)
    answer_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


class ReferenceErp:
    def __init__(self, token: str | None = "erp-token", seed: int = 0, **behaviour: Any) -> None:
        self.token = token
        self.behaviour = Behaviour(**behaviour)
        self.rand = random.Random(seed)
        self.responses: dict[str, tuple[str, int, dict]] = {}
        self.creates: Counter[str] = Counter()
        self.credited: dict[str, Decimal] = {}  # invoice number -> total credited
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # --- the API ---------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/v1/billing/generate-invoice", self.generate_invoice)
        app.router.add_post("/v1/billing/credit-notes", self.credit_note)
        app.router.add_get("/_stats", self.stats_view)
        app.router.add_post("/_control", self.control_view)
        return app

    def outage(self, seconds: float) -> None:
        now = time.monotonic()
        self.behaviour.outages.append((now, now + seconds))

    def in_outage(self) -> bool:
        now = time.monotonic()
        return any(a <= now < b for a, b in self.behaviour.outages)

    def _answer(self, status: int, body: dict, retry: bool = False) -> web.Response:
        self.statuses[status] += 1
        headers = {}
        if retry and self.behaviour.retry_after is not None:
            headers["Retry-After"] = str(int(self.behaviour.retry_after))
        return web.json_response(body, status=status, headers=headers)

    async def generate_invoice(self, request: web.Request) -> web.Response:
        return await self._idempotent(request, self._create)

    async def credit_note(self, request: web.Request) -> web.Response:
        return await self._idempotent(request, self._credit)

    async def _idempotent(self, request: web.Request, create) -> web.Response:
        b = self.behaviour
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer(401, {"error_code": "UNAUTHORIZED", "message": "bad or missing bearer token"})
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return self._answer(400, {"error_code": "MISSING_IDEMPOTENCY_KEY", "message": "Idempotency-Key header is required"})
        self.requests[key] += 1
        if b.latency_ms:
            await asyncio.sleep(b.latency_ms / 1000)
        if self.in_outage() or key in b.fail_keys or (b.error_rate and self.rand.random() < b.error_rate):
            return self._answer(503, {"error_code": "UNAVAILABLE", "message": "try again later"}, retry=True)
        if key in b.rate_limit_keys:
            return self._answer(429, {"error_code": "RATE_LIMITED", "message": "slow down"}, retry=True)
        raw = await request.read()
        digest = hashlib.sha256(raw).hexdigest()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self.responses:
                first_digest, status, body = self.responses[key]
                if first_digest != digest:
                    return self._answer(409, {"error_code": "IDEMPOTENCY_CONFLICT",
                                              "message": "this Idempotency-Key was used with a different request body"})
                return self._answer(status, body)
            status, body = create(key, raw)
            if status < 400:  # like Stripe: a request that failed validation is not saved
                self.responses[key] = (digest, status, body)
            return self._answer(status, body)

    def _create(self, key: str, raw: bytes) -> tuple[int, dict]:
        b = self.behaviour
        try:
            req = json.loads(raw, parse_float=Decimal)
            currency = str(req["currency"])
            customer = str(req["customerReference"])
            lines = req["lineItems"]
            requested = parse_amount(req["requestedAmount"])
            if not isinstance(lines, list) or not lines:
                raise ValueError("lineItems")
            if req.get("sourceInteractionId") != key:
                return 400, {"error_code": "KEY_MISMATCH", "message": "Idempotency-Key must be the sourceInteractionId"}
        except (ValueError, KeyError, TypeError, MoneyError) as e:
            return 400, {"error_code": "INVALID_REQUEST", "message": f"malformed request ({type(e).__name__})"}
        if currency not in CURRENCIES or (b.currencies is not None and currency not in b.currencies):
            return 400, {"error_code": "INVALID_CURRENCY", "message": f"currency {currency[:8]} is not supported"}
        if not customer or (b.known_customers is not None and customer not in b.known_customers):
            return 400, {"error_code": "UNKNOWN_CUSTOMER", "message": "customerReference is not a known customer"}
        try:
            # each line rounded, then summed: the invoice shows line amounts that add up
            subtotal = sum((round_money(parse_amount(li["quantity"]) * parse_amount(li["unitPrice"]), currency)
                            for li in lines), Decimal(0))
            tax = round_money(sum((parse_amount(t["amount"]) for t in req.get("taxes") or []), Decimal(0)), currency)
        except (KeyError, TypeError, MoneyError) as e:
            return 400, {"error_code": "INVALID_REQUEST", "message": f"malformed line item or tax ({type(e).__name__})"}
        total = subtotal + tax
        if total != requested:
            return 400, {"error_code": "AMOUNT_MISMATCH",
                         "message": f"requestedAmount {requested} does not equal line items plus taxes {total}"}
        self._seq += 1
        self.creates[key] += 1
        year = datetime.now(timezone.utc).year
        return 201, {"invoiceNumber": f"ERP-{year}-{self._seq:06d}",
                     "invoiceId": hashlib.sha256(f"erp:{key}".encode()).hexdigest()[:24],
                     "status": "ISSUED", "currency": currency,
                     "subtotal": str(subtotal), "taxTotal": str(tax), "total": str(total),
                     **b.answer_overrides.get(key, {})}

    def _credit(self, key: str, raw: bytes) -> tuple[int, dict]:
        """A credit note on an invoice this ERP issued, never more than what is left of it."""
        try:
            req = json.loads(raw, parse_float=Decimal)
            number = str(req["sourceInvoiceNumber"])
            currency = str(req["currency"])
            lines = req["lineItems"]
            requested = parse_amount(req["requestedAmount"])
            if not isinstance(lines, list) or not lines or not str(req.get("reason") or ""):
                raise ValueError("lineItems or reason")
            subtotal = sum((round_money(parse_amount(li["quantity"]) * parse_amount(li["unitPrice"]), currency)
                            for li in lines), Decimal(0))
            tax = round_money(sum((parse_amount(t["amount"]) for t in req.get("taxes") or []), Decimal(0)), currency)
        except (ValueError, KeyError, TypeError, MoneyError) as e:
            return 400, {"error_code": "INVALID_REQUEST", "message": f"malformed request ({type(e).__name__})"}
        invoice = next((body for _, status, body in self.responses.values()
                        if status == 201 and body.get("invoiceNumber") == number), None)
        if invoice is None:
            return 400, {"error_code": "UNKNOWN_INVOICE", "message": "sourceInvoiceNumber is not an invoice of this ERP"}
        if currency != invoice["currency"]:
            return 400, {"error_code": "INVALID_CURRENCY", "message": "the credit note's currency is not the invoice's"}
        total = subtotal + tax
        if total != requested:
            return 400, {"error_code": "AMOUNT_MISMATCH",
                         "message": f"requestedAmount {requested} does not equal line items plus taxes {total}"}
        credited = self.credited.get(number, Decimal(0))
        if credited + total > Decimal(invoice["total"]):
            return 400, {"error_code": "EXCEEDS_INVOICE", "message": "more than what is left of the invoice"}
        self.credited[number] = credited + total
        self._seq += 1
        self.creates[key] += 1
        year = datetime.now(timezone.utc).year
        return 201, {"creditNoteNumber": f"ERP-CN-{year}-{self._seq:06d}",
                     "creditNoteId": hashlib.sha256(f"erp-cn:{key}".encode()).hexdigest()[:24],
                     "status": "ISSUED", "currency": currency, "invoiceNumber": number,
                     "subtotal": str(subtotal), "taxTotal": str(tax), "total": str(total),
                     **self.behaviour.answer_overrides.get(key, {})}

    async def stats_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def stats(self) -> dict[str, Any]:
        return {"creates": dict(self.creates), "totalCreates": sum(self.creates.values()),
                "requests": sum(self.requests.values()), "statuses": {str(k): v for k, v in self.statuses.items()},
                "inOutage": self.in_outage()}

    async def control_view(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.control(**body)
        except (ValueError, TypeError) as e:
            return web.json_response({"error_code": "BAD_CONTROL", "message": str(e)}, status=400)
        return web.json_response(self.stats())

    def control(self, outageSeconds: float | None = None, latencyMs: float | None = None,  # noqa: N803
                errorRate: float | None = None, failKeys: list[str] | None = None,
                retryAfter: float | None = None, knownCustomers: list[str] | None = None,
                endOutage: bool = False, answerOverrides: dict[str, dict[str, Any]] | None = None) -> None:
        b = self.behaviour
        if outageSeconds:
            self.outage(float(outageSeconds))
        if endOutage:
            b.outages.clear()
        if latencyMs is not None:
            b.latency_ms = float(latencyMs)
        if errorRate is not None:
            b.error_rate = float(errorRate)
        if failKeys is not None:
            b.fail_keys = set(failKeys)
        if retryAfter is not None:
            b.retry_after = float(retryAfter) or None
        if knownCustomers is not None:
            b.known_customers = set(knownCustomers)
        if answerOverrides is not None:
            b.answer_overrides = dict(answerOverrides)

    # --- running it ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> "ReferenceErp":
        """Serve on a thread of its own (tests, demo, benchmarks)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve(port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="reference-erp", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("reference ERP did not start")
        return self

    async def _serve(self, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def call(self, fn, *args, **kwargs):
        """Run `fn` on the server's loop (state is only touched from there)."""
        assert self._loop is not None
        done = threading.Event()
        out: list[Any] = []

        def run() -> None:
            out.append(fn(*args, **kwargs))
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)
        return out[0] if out else None

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)  # type: ignore[union-attr]
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reference-erp", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8070)
    p.add_argument("--token", default="erp-token", help="expected bearer token ('' for none)")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503")
    p.add_argument("--outage", action="append", default=[], metavar="START:END",
                   help="answer 503 from START to END seconds after start (repeatable)")
    p.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on 503/429")
    p.add_argument("--currencies", default=None, help="comma-separated supported currencies (default: all ISO 4217)")
    p.add_argument("--customers", default=None, help="file with one known customer reference per line (default: any)")
    a = p.parse_args(argv)
    now = time.monotonic()
    outages = []
    for spec in a.outage:
        start, _, end = spec.partition(":")
        outages.append((now + float(start), now + float(end)))
    known = None
    if a.customers:
        with open(a.customers, encoding="utf-8") as f:
            known = {line.strip() for line in f if line.strip()}
    erp = ReferenceErp(token=a.token or None, latency_ms=a.latency_ms, error_rate=a.error_rate, outages=outages,
                       retry_after=a.retry_after, known_customers=known,
                       currencies=set(a.currencies.split(",")) if a.currencies else None)
    print(f"reference ERP on http://127.0.0.1:{a.port}", flush=True)
    web.run_app(erp.app(), host="127.0.0.1", port=a.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
