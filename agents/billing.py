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

from agents.context import Context
from adapters.erp import ErpInvalidResponse, ErpRejected
from agents.batching import Batch, Parked, attempt_of, erp_call, park, run_batches
from agents.routing import event_context, guard_one, parse, source_of
from agents.series import catch_up, catch_up_counter, claim, local_series, number_locally
from runtime.logs import get_logger
from domain.billing import Draft, draft, erp_amount_problems, erp_request, issue, vat_for
from domain.jurisdictions import VatTreatment
from domain.dates import DateError
from domain.ledger import LedgerEntry, State
from domain.pricing import PricingError
from schemas.events import InteractionCompleted
from schemas.invoices import ErpInvoiceResponse, Invoice

STAGE = "billing"
ISSUED = (State.BILLED, State.DOCUMENTED, State.DELIVERED)
log = get_logger("billing")


async def call_erp(ctx: Context, d: Draft, batch: Batch
                   ) -> ErpInvoiceResponse | ErpRejected | ErpInvalidResponse | Parked:
    client = ctx.services.erp
    assert client is not None
    req = erp_request(d)
    return await erp_call(ctx, lambda: client.generate_invoice(req), batch)


async def to_review(ctx: Context, iid: str, entry: LedgerEntry, reason: str, detail: str,
                    interaction: InteractionCompleted, source: str) -> None:
    # the draft is dropped: a resubmit after the fix is priced afresh
    ctx.ledger.put(iid, entry.touched(ctx.clock(), state=State.REVIEW, reason=reason, billingSource=source, draft=None))
    await ctx.review(STAGE, iid, reason, interaction, detail=detail)
    await ctx.audit(STAGE, iid, "REVIEW", reason)


async def bill(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    interaction: InteractionCompleted = parse(InteractionCompleted, event.value)
    iid = interaction.interactionId
    msg = event.message
    source = source_of(event)
    now = ctx.clock()
    entry = ctx.ledger.get(iid) or LedgerEntry(state=State.RECEIVED, firstSeen=now, updatedAt=now, source=source)
    if entry.invoice or entry.state in ISSUED:  # issued once: a later stage's review included
        invoice = entry.invoice
        # the number may be all that is left of the numbering after a crash (agents/series.py);
        # an ERP's number is not of the partition's series and is left alone
        catch_up(ctx, entry.invoiceNumber, local_series(ctx, msg.partition), iid)
        if entry.billingSource == source and invoice is not None:
            # this very message again (crash or rebalance): its invoice may not have landed
            await ctx.publish("callbill.invoices", iid, invoice, wait=False)
            # the same decision again: its first audit record may have been lost with the crash
            await ctx.audit(STAGE, iid, "BILLED", f"invoice {invoice.invoiceNumber} (republished after a restart)")
        else:
            await ctx.audit(STAGE, iid, "ALREADY_BILLED", f"invoice {entry.invoiceNumber}")
        return
    if entry.state is State.REVIEW and entry.billingSource == source:
        await ctx.audit(STAGE, iid, "ALREADY_IN_REVIEW", entry.reason)  # redelivered: reviewed once
        return

    await ctx.directory.ready()
    customer = ctx.directory.customers.get(interaction.customerId or "")
    if customer is None and (why := ctx.directory.invalid.get(interaction.customerId or "")):
        await to_review(ctx, iid, entry, "INVALID_CUSTOMER", f"the customer's directory record is refused ({why}); "
                        "fix it in the CRM and resubmit", interaction, source)
        return
    if customer is None:
        await to_review(ctx, iid, entry, "UNKNOWN_CUSTOMER", "the customer id is not in the customer directory; "
                        "import the customer and resubmit", interaction, source)
        return
    try:
        if entry.draft and ctx.services.erp is not None:
            # a retry sends the ERP the very body of the first attempt (same Idempotency-Key,
            # same body), even if the customer record or the rate card changed meanwhile
            d = entry.draft
        else:
            card, seller_country = ctx.services.rate_card, ctx.settings.seller_country
            vat = vat_for(customer, card, seller_country)
            if vat.reverse_charge and ctx.services.vies is not None:
                vat, why = await confirm_vat(ctx, vat)
                entry = ctx.ledger.get(iid) or entry  # re-read: the await above let other work run
                if why is not None:
                    await to_review(ctx, iid, entry, why[0], why[1], interaction, source)
                    return
            d = draft(interaction, customer, card, ctx.settings.default_timezone,
                      ctx.services.catalogs.localizer(customer.locale), seller_country, vat)
    except (PricingError, DateError) as e:
        await to_review(ctx, iid, entry, e.reason, e.detail, interaction, source)
        return

    if ctx.services.erp is None:
        number, series_ = number_locally(ctx, msg.partition, iid)
        invoice = issue(d, number, series_, ctx.clock())
    else:
        if not entry.draft:
            entry = entry.touched(ctx.clock(), draft=d)
            ctx.ledger.put(iid, entry)
        result = await call_erp(ctx, d, batch)
        entry = ctx.ledger.get(iid) or entry  # re-read: the await above let other work run
        if isinstance(result, Parked):
            ctx.ledger.put(iid, entry.touched(ctx.clock(), reason=f"WAITING: {result.reason} (attempt {attempt_of(event)})"))
            await park(ctx, STAGE, event, iid, "callbill.billable", interaction, result)
            return
        if isinstance(result, ErpRejected):
            # the code only: the ERP's free text may quote customer data
            await to_review(ctx, iid, entry, f"ERP_REJECTED:{result.error_code}",
                            f"the ERP answered {result.status} {result.error_code}", interaction, source)
            return
        problems = [result.problem] if isinstance(result, ErpInvalidResponse) else erp_amount_problems(d.priced.currency, result)
        if problems:
            # never a subject line or a PDF: the number, the amounts or the currency are wrong
            await to_review(ctx, iid, entry, "ERP_INVALID_RESPONSE",
                            "the ERP's answer cannot be issued: " + "; ".join(problems), interaction, source)
            return
        invoice = issue(d, result.invoiceNumber, "ERP", ctx.clock(), result)

    # the claim, then the entry (with its number), then the counter: see domain/numbering.py.
    # The draft goes: it was only for resending the ERP the first request's body, and an entry
    # without it is half the size in every later write, the changelog and the worker's memory.
    claim(ctx, invoice.invoiceNumber, iid)
    ctx.ledger.put(iid, entry.touched(ctx.clock(), state=State.BILLED, reason=None, invoiceNumber=invoice.invoiceNumber,
                                 invoice=invoice, billingSource=source, draft=None))
    catch_up_counter(ctx, invoice)
    await ctx.publish("callbill.invoices", iid, invoice, wait=False)
    await ctx.audit(STAGE, iid, "BILLED", f"invoice {invoice.invoiceNumber}")


async def confirm_vat(ctx: Context, vat: VatTreatment) -> tuple[VatTreatment, tuple[str, str] | None]:
    """VIES on the reverse-charge number: (the treatment, None) or (…, (review reason, detail))."""
    assert ctx.services.vies is not None and vat.buyer_vat_id
    answer = await ctx.services.vies.confirm(vat.buyer_vat_id)
    if answer is True:
        return vat, None
    if answer is False:
        return vat, ("INVALID_VAT_ID", "VIES does not know the customer's VAT number as a registered business; "
                     "correct the customer's taxId and resubmit")
    if ctx.settings.vies_unavailable == "charge_vat":
        return VatTreatment(False, vat.buyer_vat_id, vat.buyer_vat_country), None
    return vat, ("VAT_ID_UNCONFIRMED", "VIES could not confirm the customer's VAT number (unavailable); "
                 "resubmit when it answers, or set CALLBILL_VIES_UNAVAILABLE=charge_vat")


async def bill_one(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    with event_context(event):
        await guard_one(ctx, STAGE, event, lambda e: bill(ctx, e, batch))


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.billable"], name="billing")
    async def billing(stream: faust.StreamT) -> None:
        await ctx.directory.ready()
        # without an ERP there is no I/O to overlap, and in order keeps the numbering simple
        await run_batches(stream, STAGE, ctx.settings.billing_batch, ctx.settings.batch_window,
                          lambda e, b: bill_one(ctx, e, b), concurrent=ctx.services.erp is not None)
