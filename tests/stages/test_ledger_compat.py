"""A ledger written by the code before the app factory (0.1.0, commit 893ad2f) is read by this code.

tests/support/data/ledger-changelog-0.1.0.jsonl is that code's `ledger` changelog from a real
`callbill demo` run (3 invoices delivered, one postal): restored here as Faust restores a
table (the last record of each key wins), then driven through today's stages, which must
take the interactions as already billed, documented and delivered.
"""
from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from agents import billing, delivery, documents
from agents.batching import Batch
from domain.ledger import State
from schemas.documents import DocumentStored
from schemas.events import InteractionCompleted
from schemas.invoices import Invoice
from stage_context import event, make_context

RECORDED = Path(__file__).resolve().parents[1] / "support" / "data" / "ledger-changelog-0.1.0.jsonl"


def restored() -> dict[str, object]:
    table: dict[str, object] = {}
    lines = RECORDED.read_text().splitlines()[1:]
    for row in map(json.loads, lines):
        key = json.loads(base64.b64decode(row["key"]))
        if row["value"] is None:
            table.pop(key, None)
        else:
            table[key] = json.loads(base64.b64decode(row["value"]))
    return table


def test_the_recorded_ledger_reads_and_writes_back_unchanged(tmp_path):
    ctx = make_context(tmp_path)
    ctx.ledger.table.update(restored())
    entries = {k: ctx.ledger.get(k) for k, v in ctx.ledger.table.items() if isinstance(v, dict) and "state" in v}
    assert len(entries) >= 4
    assert sum(e.state is State.DELIVERED for e in entries.values()) == 3
    for key, entry in entries.items():
        before = ctx.ledger.table[key]
        ctx.ledger.put(key, entry)
        assert ctx.ledger.table[key] == before, key  # the same shape: a rollback reads what this code writes


def test_the_recorded_interactions_are_never_billed_documented_or_sent_again(tmp_path, mail_sink):
    ctx = make_context(tmp_path, smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off")
    ctx.ledger.table.update(restored())
    delivered = {k: ctx.ledger.get(k) for k, v in ctx.ledger.table.items()
                 if isinstance(v, dict) and v.get("state") == "DELIVERED"}
    for iid, entry in delivered.items():
        invoice = Invoice.model_validate(entry.invoice)
        again = InteractionCompleted(interactionId=iid, source="webhook", customerId=invoice.customerReference,
                                     endedAt=invoice.serviceAt, durationSeconds=60, wrapupCode="Billable Service")
        asyncio.run(billing.bill(ctx, event(again, topic="callbill.billable", offset=999), Batch(1, "billing")))
        asyncio.run(documents.document(ctx, event(invoice, topic="callbill.invoices", offset=999),
                                       Batch(1, "documents")))
        doc = DocumentStored.model_validate(entry.document)
        asyncio.run(delivery.deliver(ctx, event(doc, topic="callbill.documents", offset=999), Batch(1, "delivery")))
    n = len(delivered)
    assert ctx.outcomes() == ["ALREADY_BILLED", "ALREADY_DOCUMENTED", "ALREADY_DELIVERED"] * n
    assert not ctx.out("callbill.invoices") and not ctx.out("callbill.documents") and mail_sink.messages() == []
