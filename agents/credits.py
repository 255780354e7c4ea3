"""callbill.credit-requests -> a credit note on callbill.invoices, and the answer on callbill.credit-notes.

A request is keyed by its invoice's interactionId, so it is handled on the partition that
holds the invoice's ledger entry. domain/credits.py decides what is credited (at the
invoice's own rates, never more than what is left of it); this stage numbers the note,
records it and sends it on. The note then travels like an invoice: documents renders and
stores it, delivery sends it on the customer's channel. Its ledger entry is
`<interactionId>~<creditNumber>`, on the same changelog partition as the invoice's.

Exactly once, by the request's idempotency key: the invoice's entry lists every note issued
on it (`credits`) with the key that asked for it. A key seen before is answered with the
same credit note. The writes, in order: the number's claim (by `<interactionId>~<key>`), the
note's own entry, the invoice's `credits`, the series counter. So after a crash either all landed (the request read again republishes the
note), or the counter did not (it catches up), or nothing did (the note is numbered again,
with the same number). Without an ERP the number comes from the partition's `CN<pp>` series.
With one, the ERP issues the note (`POST /v1/billing/credit-notes`, Idempotency-Key: the
request's key) and its number and amounts are the truth; failures back off, park and go to
review as invoices do (agents/billing.py).
"""
from __future__ import annotations

from decimal import Decimal

import faust

from adapters.erp import ErpInvalidResponse, ErpRejected
from agents.batching import Batch, Parked, attempt_of, erp_call, park, run_batches
from agents.series import catch_up_counter, claim, number_locally
from agents.context import Context
from agents.routing import event_context, guard_one, parse, source_of
from domain.billing import erp_amount_problems
from domain.credits import CreditError, CreditNote, credit
from domain.dates import zone
from domain.ledger import CreditRecord, LedgerEntry, State
from schemas.credits import CreditOutcome, CreditRequest, ErpCreditNoteRequest, ErpCreditNoteResponse
from schemas.invoices import ErpLineItem, Invoice

STAGE = "credits"


async def answer(ctx: Context, req: CreditRequest, status: str, note: Invoice | None = None,
                 reason: str | None = None, detail: str | None = None, again: bool = False,
                 credited: Decimal | None = None) -> None:
    """`credited`: what has been credited on the invoice so far, once known."""
    await ctx.publish("callbill.credit-notes", req.interactionId, CreditOutcome(
        interactionId=req.interactionId, invoiceNumber=req.invoiceNumber, idempotencyKey=req.key(), status=status,
        creditNumber=note.invoiceNumber if note else None, currency=note.currency if note else None,
        total=note.total if note else None, creditedTotal=credited,
        reason=reason, detail=detail, again=again), wait=False)


def review_id(req: CreditRequest) -> str:
    """The review item of a request that needs a person: it has no number yet, so its key names it."""
    return f"{req.interactionId}~{req.key()}"


async def to_review(ctx: Context, req: CreditRequest, reason: str, detail: str, credited: Decimal) -> None:
    await ctx.review(STAGE, review_id(req), reason, req, detail=detail)
    await ctx.audit(STAGE, req.interactionId, "REVIEW", reason)
    await answer(ctx, req, "REVIEW", reason=reason, detail=detail, credited=credited)


async def call_erp(ctx: Context, req: CreditRequest, note: CreditNote, invoice: Invoice, batch: Batch
                   ) -> ErpCreditNoteResponse | ErpRejected | ErpInvalidResponse | Parked:
    client = ctx.services.erp
    assert client is not None
    body = ErpCreditNoteRequest(
        sourceInvoiceNumber=invoice.invoiceNumber, sourceInteractionId=invoice.interactionId, reason=req.reason,
        currency=note.currency, subtotal=note.subtotal, taxes=note.taxes, requestedAmount=note.total,
        lineItems=[ErpLineItem(description=li.description, quantity=li.quantity, unitPrice=li.unitPrice)
                   for li in note.lineItems], issueDate=note.issueDate)
    return await erp_call(ctx, lambda: client.create_credit_note(body, req.key()), batch)


async def handle(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    req: CreditRequest = parse(CreditRequest, event.value)
    iid, key, source = req.interactionId, req.key(), source_of(event)
    entry = ctx.ledger.get(iid)
    if entry is None or entry.invoice is None or entry.invoice.invoiceNumber != req.invoiceNumber:
        await ctx.audit(STAGE, iid, "CREDIT_REFUSED", "NO_SUCH_INVOICE")
        await answer(ctx, req, "REFUSED", reason="NO_SUCH_INVOICE",
                     detail="the ledger has no invoice with this number for this interaction")
        return
    done = next((c for c in entry.credits if c.idempotencyKey == key), None)
    if done is not None:
        note_entry = ctx.ledger.get(f"{iid}~{done.creditNumber}")
        note = note_entry.invoice if note_entry else None
        if note is not None:
            catch_up_counter(ctx, note)
            if done.source == source:
                # this very request again (crash or rebalance): the note's message may not have landed
                await ctx.publish("callbill.invoices", iid, note, wait=False)
                await ctx.audit(STAGE, iid, "CREDITED", f"credit note {done.creditNumber} (republished after a restart)")
            else:
                await ctx.audit(STAGE, iid, "ALREADY_CREDITED", f"credit note {done.creditNumber}")
        await answer(ctx, req, "ISSUED", note, again=done.source != source, credited=entry.credited)
        return

    invoice = entry.invoice
    now = ctx.clock()
    issue_day = now.astimezone(zone(invoice.timezone)).date()
    erp = ctx.services.erp
    if erp is None:
        number, series_ = number_locally(ctx, event.message.partition, f"{iid}~{key}", ctx.settings.credit_prefix)
    else:
        number, series_ = "ERP-PENDING", "ERP"
    try:
        note = credit(invoice, req, entry.credited, number, series_, issue_day, now)
    except CreditError as e:
        # the operator's request is wrong (too much, no such line): answered, nothing issued
        await ctx.audit(STAGE, iid, "CREDIT_REFUSED", e.reason)
        await answer(ctx, req, "REFUSED", reason=e.reason, detail=e.detail, credited=entry.credited)
        return

    if erp is not None:
        result = await call_erp(ctx, req, note, invoice, batch)
        if isinstance(result, Parked):
            await park(ctx, STAGE, event, iid, "callbill.credit-requests", req, result)
            await answer(ctx, req, "WAITING", reason=f"{result.reason} (attempt {attempt_of(event)})",
                         credited=entry.credited)
            return
        if isinstance(result, ErpRejected):
            await to_review(ctx, req, f"ERP_REJECTED:{result.error_code}",
                            f"the ERP answered {result.status} {result.error_code}", entry.credited)
            return
        problems = [result.problem] if isinstance(result, ErpInvalidResponse) else erp_amount_problems(note.currency, result)
        if problems:
            await to_review(ctx, req, "ERP_INVALID_RESPONSE", "the ERP's answer cannot be issued: " + "; ".join(problems),
                            entry.credited)
            return
        note = note.model_copy(update={"creditNumber": result.creditNoteNumber, "total": result.total,
                                       **{k: v for k, v in (("subtotal", result.subtotal),
                                                            ("taxTotal", result.taxTotal)) if v is not None}})
        entry = ctx.ledger.get(iid) or entry  # re-read: the await above let other work run
        if any(c.idempotencyKey == key for c in entry.credits):
            return  # a copy of this request got there first (the ERP answered both with one note)

    issued = note.as_invoice(invoice)
    now = ctx.clock()
    # the claim and the note's entry first, then the invoice's record of it, then the counter
    claim(ctx, issued.invoiceNumber, f"{iid}~{key}")
    ctx.ledger.put(issued.record_id, LedgerEntry(state=State.BILLED, firstSeen=now, updatedAt=now, source=source,
                                                 invoiceNumber=issued.invoiceNumber, invoice=issued,
                                                 billingSource=source))
    record = CreditRecord(idempotencyKey=key, creditNumber=issued.invoiceNumber, total=issued.total,
                          issuedAt=issued.issuedAt, source=source)
    current = ctx.ledger.get(iid) or entry
    ctx.ledger.update(iid, credits=[*current.credits, record])
    catch_up_counter(ctx, issued)
    await ctx.publish("callbill.invoices", iid, issued, wait=False)
    await ctx.audit(STAGE, iid, "CREDITED", f"credit note {issued.invoiceNumber} on {invoice.invoiceNumber}",
                    actor=req.actor)
    await answer(ctx, req, "ISSUED", issued, credited=current.credited + issued.total)


async def credit_one(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    with event_context(event):
        await guard_one(ctx, STAGE, event, lambda e: handle(ctx, e, batch))


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.credit-requests"], name="credits")
    async def credits(stream: faust.StreamT) -> None:
        # in order: two requests on one invoice must see each other's credits (the bound)
        await run_batches(stream, STAGE, ctx.settings.billing_batch, ctx.settings.batch_window,
                          lambda e, b: credit_one(ctx, e, b), concurrent=False)
