"""The ERP adapter against the reference ERP on loopback: idempotency, errors, classification."""
from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import pytest

from adapters.erp import ErpClient, ErpRejected, ErpRetryable
from devtools.reference_erp import ReferenceErp
from schemas.invoices import ErpInvoiceRequest, ErpLineItem


def request(key: str = "gen-1", customer: str = "CUST-1", currency: str = "USD", amount: str = "34.53",
            unit: str = "2.50") -> ErpInvoiceRequest:
    return ErpInvoiceRequest(
        sourceInteractionId=key, requestedAmount=Decimal(amount), currency=currency,
        lineItems=[ErpLineItem(description="Consultation", quantity=13, unitPrice=Decimal(unit))],
        customerReference=customer, deliveryChannel="EMAIL", priority="HIGH",
        taxes=[{"name": "IL", "jurisdiction": "US-IL", "rate": "0.0625", "base": "32.50", "amount": "2.03"}],
    )


@pytest.fixture
def erp():
    server = ReferenceErp(token="t0ken", known_customers={"CUST-1"}).start()
    yield server
    server.stop()


def run(coro_fn, *args, **kwargs):
    async def main():
        return await coro_fn(*args, **kwargs)
    return asyncio.run(main())


async def call(url: str, req: ErpInvoiceRequest, token: str | None = "t0ken", timeout: float = 5.0):
    client = ErpClient(url, token, timeout=timeout)
    try:
        return await client.generate_invoice(req)
    finally:
        await client.aclose()


def test_the_same_key_gets_the_first_answer(erp):
    first = run(call, erp.url, request())
    again = run(call, erp.url, request())
    assert first.invoiceNumber == again.invoiceNumber and first.invoiceNumber.startswith("ERP-")
    assert first.total == Decimal("34.53") and first.taxTotal == Decimal("2.03")
    assert erp.stats()["creates"] == {"gen-1": 1}


def test_concurrent_requests_with_one_key_create_one_invoice(erp):
    erp.call(erp.control, latencyMs=50)

    async def many():
        client = ErpClient(erp.url, "t0ken")
        try:
            return await asyncio.gather(*(client.generate_invoice(request()) for _ in range(20)))
        finally:
            await client.aclose()

    answers = asyncio.run(many())
    assert len({a.invoiceNumber for a in answers}) == 1
    assert erp.stats()["totalCreates"] == 1


def test_same_key_different_body_is_a_conflict(erp):
    run(call, erp.url, request())
    with pytest.raises(ErpRejected) as e:
        run(call, erp.url, request(amount="35.53", unit="2.5769"))
    assert (e.value.status, e.value.error_code) == (409, "IDEMPOTENCY_CONFLICT")


@pytest.mark.parametrize("req, code", [
    (request(customer="CUST-404"), "UNKNOWN_CUSTOMER"),
    (request(currency="ZZZ"), "INVALID_CURRENCY"),
    (request(amount="99.99"), "AMOUNT_MISMATCH"),
])
def test_bad_requests_are_rejected_with_the_erps_error_code(erp, req, code):
    with pytest.raises(ErpRejected) as e:
        run(call, erp.url, req)
    assert e.value.status == 400 and e.value.error_code == code and e.value.message
    # a stored 400 answers the same again, and nothing was created
    with pytest.raises(ErpRejected):
        run(call, erp.url, req)
    assert erp.stats()["totalCreates"] == 0


def test_wrong_token_is_rejected_not_retried(erp):
    with pytest.raises(ErpRejected) as e:
        run(call, erp.url, request(), token="nope")
    assert e.value.status == 401


def test_outage_and_rate_limits_are_retryable_with_retry_after(erp):
    erp.call(erp.control, outageSeconds=30, retryAfter=7)
    with pytest.raises(ErpRetryable) as e:
        run(call, erp.url, request())
    assert e.value.reason == "ERP_HTTP_503" and e.value.retry_after == 7.0
    erp.call(erp.control, endOutage=True)
    erp.behaviour.rate_limit_keys = {"gen-9"}
    with pytest.raises(ErpRetryable) as e:
        run(call, erp.url, request(key="gen-9"))
    assert e.value.reason == "ERP_HTTP_429" and e.value.retry_after == 7.0
    assert run(call, erp.url, request()).invoiceNumber  # after the outage it works


def test_timeouts_and_refused_connections_are_retryable(erp):
    erp.call(erp.control, latencyMs=500)
    with pytest.raises(ErpRetryable) as e:
        run(call, erp.url, request(), timeout=0.1)
    assert e.value.reason == "ERP_TIMEOUT"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(ErpRetryable) as e:
        run(call, f"http://127.0.0.1:{free}", request())
    assert e.value.reason == "ERP_UNREACHABLE"


def test_retry_after_http_date():
    from datetime import datetime, timezone

    from adapters.http import retry_after_seconds

    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("Wed, 25 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("soon") is None


def test_the_erp_accepts_what_callbill_prices_sub_cent_tiers_included(erp, tmp_path):
    """callbill rounds each line then sums; so does the ERP, so the totals agree."""
    import json
    from datetime import datetime, timezone

    from domain.billing import draft, erp_request
    from domain.pricing import load_rate_card
    from schemas.customers import Customer
    from schemas.events import InteractionCompleted

    card = tmp_path / "card.json"
    card.write_text(json.dumps({"rates": [{"id": "t", "match": {"wrapupCodes": ["B"]}, "description": "T",
                                           "charge": "per_started_minute", "prices": {"USD": {"tiers": [
                                               {"upTo": 3, "unitPrice": "0.035"}, {"unitPrice": "0.025"}]}}}],
                                "taxes": {"*": {"lines": [{"name": "VAT", "rate": "0.175"}]}}}))
    c = Customer(customerId="CUST-1", timezone="UTC", currency="USD")
    for seconds in (1, 61, 179, 181, 359, 3599):
        i = InteractionCompleted(interactionId=f"t-{seconds}", source="webhook", customerId="CUST-1",
                                 endedAt=datetime(2026, 1, 1, tzinfo=timezone.utc), durationSeconds=seconds,
                                 wrapupCode="B")
        answer = run(call, erp.url, erp_request(draft(i, c, load_rate_card(card), None)))
        assert answer.total == draft(i, c, load_rate_card(card), None).priced.total
