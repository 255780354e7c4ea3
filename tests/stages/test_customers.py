"""Customers validated in the model (issue 17, point 7): a record produced straight to
crm.customers, past the importer, with a bad country, currency, timezone, phone, email or
locale is dead-lettered with the field named and never used for an invoice."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from agents import billing, customers
from agents.batching import Batch
from agents.routing import guard_one
from schemas.events import InteractionCompleted
from stage_context import event, make_context

GOOD = {"customerId": "CUST-NEW", "name": "Jane Doe", "email": "jane@example.com", "phone": "+12175550123",
        "postalAddress": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701",
                          "country": "US"},
        "timezone": "America/Chicago", "currency": "USD", "locale": "en-US"}
BAD = {
    "postalAddress.country": {"postalAddress": {**GOOD["postalAddress"], "country": "XX"}},
    "currency": {"currency": "EURO"},
    "timezone": {"timezone": "America/Springfield"},
    "phone": {"phone": "+1 555"},
    "email": {"email": "jane.at.example.com"},
    "locale": {"locale": "xx-QQ"},
}


def produce(ctx, record: dict | None, key: str = "CUST-NEW", offset: int = 0) -> None:
    """What a CRM sync writing crm.customers does to a worker: its directory follows the
    record and the customers stage reads it."""
    raw = json.dumps(record).encode() if record is not None else None
    ctx.directory.apply(key, raw)
    e = event(raw if raw is not None else b"", topic="crm.customers", key=key, offset=offset)
    e.message.value = raw
    asyncio.run(guard_one(ctx, customers.STAGE, e, lambda ev: customers.handle(ctx, ev)))


def bill(ctx, customer_id: str = "CUST-NEW") -> None:
    ended = datetime(2026, 11, 24, 22, 20, tzinfo=timezone.utc)
    i = InteractionCompleted(interactionId="gen-77", source="webhook", customerId=customer_id, endedAt=ended,
                             startedAt=ended - timedelta(seconds=300), durationSeconds=300,
                             serviceType="Consultation Service - Level 2", wrapupCode="Billable Service")
    asyncio.run(billing.bill_one(ctx, event(i, topic="callbill.billable"), Batch(1, billing.STAGE)))


def test_a_valid_record_is_taken_as_it_is_and_normalised(tmp_path):
    ctx = make_context(tmp_path)
    produce(ctx, {**GOOD, "currency": "usd", "locale": "en_US", "postalAddress": {**GOOD["postalAddress"], "country": "us"},
                  "phone": "(217) 555-0123"})
    assert ctx.out("callbill.dlq") == []
    c = ctx.directory.customers["CUST-NEW"]
    assert (c.currency, c.locale, c.postalAddress.country, c.phone) == ("USD", "en-US", "US", "+12175550123")
    bill(ctx)
    assert [i["interactionId"] for i in ctx.out("callbill.invoices")] == ["gen-77"]


@pytest.mark.parametrize("field", sorted(BAD))
def test_a_record_with_a_bad_field_is_dead_lettered_with_it_named_and_never_invoiced(tmp_path, field):
    ctx = make_context(tmp_path)
    record = {**GOOD, **BAD[field]}
    produce(ctx, record)
    [dead] = ctx.out("callbill.dlq")
    assert dead["stage"] == "customers" and dead["reason"].startswith(f"invalid Customer: {field}: ")
    bad_value = json.dumps(BAD[field]).split(": ")[-1].strip('"}')
    assert bad_value not in dead["reason"]  # the field, never its value
    assert "CUST-NEW" not in ctx.directory.customers

    bill(ctx)
    assert ctx.out("callbill.invoices") == []
    [review] = ctx.out("callbill.review")
    assert review["reason"] == "INVALID_CUSTOMER" and field in review["detail"]

    produce(ctx, GOOD, offset=1)  # fixed in the CRM: taken again
    assert "CUST-NEW" in ctx.directory.customers and "CUST-NEW" not in ctx.directory.invalid


def test_a_record_keyed_by_another_id_is_refused_and_a_tombstone_is_not(tmp_path):
    ctx = make_context(tmp_path)
    produce(ctx, GOOD, key="CUST-OTHER")
    [dead] = ctx.out("callbill.dlq")
    assert dead["reason"].startswith("customerId: not the record's key")
    assert "CUST-OTHER" not in ctx.directory.customers
    produce(ctx, None, key="CUST-OTHER", offset=1)
    assert len(ctx.out("callbill.dlq")) == 1 and "CUST-OTHER" not in ctx.directory.invalid
