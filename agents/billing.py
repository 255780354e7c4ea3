"""callbill.billable -> callbill.invoices: each interaction invoiced exactly once.

Without an ERP, callbill prices the interaction from the rate card and numbers it from
its partition's series (domain/numbering.py). With one, the ERP issues the invoice; the
request carries `Idempotency-Key: <interactionId>`, so retries and redeliveries create
one invoice, and the ERP's number and amounts are the truth.

Interactions are taken in batches and their ERP calls run concurrently. A failing call
backs off (full jitter) only while the rest of its batch is still busy; once nothing but
waiting items is left, they are parked on callbill.retry, so one slow interaction never
holds up the ones behind it on its partition. A 4xx from the ERP goes to review once,
with the ERP's error code, and is not retried (the guide: it needs a person).
"""
from __future__ import annotations

import faust

from adapters.erp import ErpRejected, ErpRetryable
from agents.batching import Batch, Parked, attempt_of, park, run_batches, with_backoff
from agents.routing import audit, event_context, guard_one, parse, publish, review, source_of
from app import erp
from runtime.logs import get_logger
from app.main import app, settings, topics
from runtime.metrics import EXTERNAL_ERRORS
from domain.billing import Draft, draft, erp_request, issue
from domain.dates import DateError
from domain.ledger import LedgerEntry, State
from domain.numbering import counter_key, invoice_number, seq_of, series
from domain.pricing import PricingError
from schemas.events import InteractionCompleted, utcnow
from schemas.invoices import ErpInvoiceResponse, Invoice
from tables.directory import directory
from tables.ledger import get_entry, ledger, put_entry

STAGE = "billing"
ISSUED = (State.BILLED, State.DOCUMENTED, State.DELIVERED)
log = get_logger("billing")


async def call_erp(d: Draft, batch: Batch) -> ErpInvoiceResponse | ErpRejected | Parked:
    client = erp.client()
    assert client is not None
    req = erp_request(d)
    try:
        return await with_backoff(lambda: client.generate_invoice(req), ErpRetryable, batch, settings.erp_attempts,
                                  "erp", lambda e: e.reason.lower().removeprefix("erp_"))  # http_503, timeout…
    except ErpRejected as e:
        EXTERNAL_ERRORS.labels("erp", f"http_{e.status}").inc()
        return e


def number_locally(partition: int) -> tuple[str, str]:
    """The next number of this partition's series; the counter moves after the entry."""
    s = series(settings.invoice_prefix, partition, settings.topic_partitions)
    counter = ledger.get(counter_key(s)) or {"seq": 0}
    return invoice_number(s, int(counter["seq"]) + 1), s


def catch_up_counter(invoice: Invoice) -> None:
    """After a crash the entry may have landed without its counter write: move it on."""
    if invoice.issuer != "callbill":
        return
    seq = seq_of(invoice.invoiceNumber, invoice.series)
    key = counter_key(invoice.series)
    current = ledger.get(key) or {"seq": 0}
    if seq is not None and int(current["seq"]) < seq:
        ledger[key] = {"seq": seq}


async def to_review(iid: str, entry: LedgerEntry, reason: str, detail: str,
                    interaction: InteractionCompleted, source: str) -> None:
    # the draft is dropped: a resubmit after the fix is priced afresh
    put_entry(iid, entry.touched(utcnow(), state=State.REVIEW, reason=reason, billingSource=source, draft=None))
    await review(STAGE, iid, reason, interaction, detail=detail)
    await audit(STAGE, iid, "REVIEW", reason)


async def bill(event: faust.EventT, batch: Batch) -> None:
    interaction: InteractionCompleted = parse(InteractionCompleted, event.value)
    iid = interaction.interactionId
    msg = event.message
    source = source_of(event)
    now = utcnow()
    entry = get_entry(iid) or LedgerEntry(state=State.RECEIVED, firstSeen=now, updatedAt=now, source=source)
    if entry.invoice or entry.state in ISSUED:  # issued once: a later stage's review included
        invoice = Invoice.model_validate(entry.invoice) if entry.invoice else None
        if invoice is not None:
            catch_up_counter(invoice)
        if entry.billingSource == source and invoice is not None:
            # this very message again (crash or rebalance): its invoice may not have landed
            await publish("callbill.invoices", iid, invoice, wait=False)
            # the same decision again: its first audit record may have been lost with the crash
            await audit(STAGE, iid, "BILLED", f"invoice {invoice.invoiceNumber} (republished after a restart)")
        else:
            await audit(STAGE, iid, "ALREADY_BILLED", f"invoice {entry.invoiceNumber}")
        return
    if entry.state is State.REVIEW and entry.billingSource == source:
        await audit(STAGE, iid, "ALREADY_IN_REVIEW", entry.reason)  # redelivered: reviewed once
        return

    await directory.ready()
    customer = directory.customers.get(interaction.customerId or "")
    if customer is None:
        await to_review(iid, entry, "UNKNOWN_CUSTOMER", "the customer id is not in the customer directory; "
                        "import the customer and resubmit", interaction, source)
        return
    try:
        if entry.draft and erp.client() is not None:
            # a retry sends the ERP the very body of the first attempt (same Idempotency-Key,
            # same body), even if the customer record or the rate card changed meanwhile
            d = Draft.model_validate(entry.draft)
        else:
            d = draft(interaction, customer, erp.rate_card(), settings.default_timezone)
    except (PricingError, DateError) as e:
        await to_review(iid, entry, e.reason, e.detail, interaction, source)
        return

    if erp.client() is None:
        number, series_ = number_locally(msg.partition)
        invoice = issue(d, number, series_, utcnow())
    else:
        if not entry.draft:
            entry = entry.touched(utcnow(), draft=d.model_dump(mode="json"))
            put_entry(iid, entry)
        result = await call_erp(d, batch)
        entry = get_entry(iid) or entry  # re-read: the await above let other work run
        if isinstance(result, Parked):
            put_entry(iid, entry.touched(utcnow(), reason=f"WAITING: {result.reason} (attempt {attempt_of(event)})"))
            await park(STAGE, event, iid, "callbill.billable", interaction, result)
            return
        if isinstance(result, ErpRejected):
            # the code only: the ERP's free text may quote customer data
            await to_review(iid, entry, f"ERP_REJECTED:{result.error_code}",
                            f"the ERP answered {result.status} {result.error_code}", interaction, source)
            return
        if result.currency and result.currency.upper() != d.priced.currency:
            await to_review(iid, entry, "ERP_CURRENCY_MISMATCH",
                            f"the ERP issued {result.invoiceNumber} in {result.currency[:3]}, "
                            f"not {d.priced.currency}", interaction, source)
            return
        invoice = issue(d, result.invoiceNumber, "ERP", utcnow(), result)

    # the entry (with its number) is written before the counter moves: see domain/numbering.py
    put_entry(iid, entry.touched(utcnow(), state=State.BILLED, reason=None, invoiceNumber=invoice.invoiceNumber,
                                 invoice=invoice.model_dump(mode="json"), billingSource=source))
    catch_up_counter(invoice)
    await publish("callbill.invoices", iid, invoice, wait=False)
    await audit(STAGE, iid, "BILLED", f"invoice {invoice.invoiceNumber}")


async def bill_one(event: faust.EventT, batch: Batch) -> None:
    with event_context(event):
        await guard_one(STAGE, event, lambda e: bill(e, batch))


@app.agent(topics["callbill.billable"], name="billing")
async def billing(stream: faust.StreamT) -> None:
    await directory.ready()
    # without an ERP there is no I/O to overlap, and in order keeps the numbering simple
    await run_batches(stream, STAGE, settings.billing_batch, settings.batch_window, bill_one,
                      concurrent=erp.client() is not None)
