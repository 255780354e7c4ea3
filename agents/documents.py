"""callbill.invoices -> a PDF in object storage -> callbill.documents.

The object key is derived from the invoice (`invoices/<yyyy>/<mm>/<number>.pdf`) and the
rendering is deterministic, so storing again is harmless. Storage errors back off inside
the batch while others are busy, then the invoice is parked on callbill.retry (back to
callbill.invoices when due): never dropped. A render failure needs a person: review.
"""
from __future__ import annotations

import hashlib

import faust

from agents.context import Context
from adapters.storage import StorageError
from agents.batching import Batch, Parked, park, run_batches, with_backoff
from agents.routing import event_context, guard_one, header, parse, source_of
from runtime import headers
from runtime.logs import error_site, get_logger
from adapters.einvoice_xml import cii, ubl
from domain import einvoice
from domain.invoice_pdf import Buyer, payment_terms
from domain.ledger import LedgerEntry, State
from domain.links import document_key
from schemas.documents import DocumentStored, EInvoiceStored
from schemas.invoices import Invoice

STAGE = "documents"
log = get_logger("documents")


def buyer_for(ctx: Context, invoice: Invoice) -> Buyer:
    c = ctx.directory.customers.get(invoice.customerReference)
    if c is None:
        return Buyer(name=None, reference=invoice.customerReference)
    a = c.postalAddress
    lines: tuple[str, ...] = ()
    if a:
        city = " ".join(x for x in (a.postalCode, a.city) if x)
        lines = tuple(x for x in (a.line1, a.line2, ", ".join(y for y in (city, a.region) if y), a.country) if x)
    return Buyer(name=c.name, address=lines, reference=invoice.customerReference, country=a.country if a else None)


async def store_pdf(ctx: Context, key: str, pdf: bytes, filename: str, sha: str, batch: Batch,
                    content_type: str = "application/pdf") -> Parked | None:
    parked = await with_backoff(ctx, lambda: ctx.services.store.put(key, pdf, filename=filename, sha256=sha,
                                                                    content_type=content_type), StorageError,
                                batch, ctx.settings.storage_attempts, "storage", lambda e: e.reason.lower())
    return parked if isinstance(parked, Parked) else None


async def stored(ctx: Context, invoice: Invoice, key: str, sha: str, size: int,
                 xml: tuple[str, str, int] | None = None) -> DocumentStored:
    """The document message: fresh signed links to the PDF and, for an e-invoice customer, the XML."""
    url, expires = await ctx.services.store.link(key, ctx.settings.link_ttl, f"{invoice.invoiceNumber}.pdf")
    e = None
    if xml is not None:
        xml_key, xml_sha, xml_size = xml
        xml_url, xml_expires = await ctx.services.store.link(xml_key, ctx.settings.link_ttl,
                                                             f"{invoice.invoiceNumber}.xml")
        e = EInvoiceStored(format="ubl", key=xml_key, sha256=xml_sha, size=xml_size, url=xml_url,
                           expiresAt=xml_expires, renewUrl=ctx.services.renew_url(invoice.invoiceNumber, xml_key))
    return DocumentStored(interactionId=invoice.interactionId, invoiceNumber=invoice.invoiceNumber, key=key, sha256=sha,
                          size=size, storage=ctx.services.store_kind, url=url, expiresAt=expires,
                          renewUrl=ctx.services.renew_url(invoice.invoiceNumber, key), einvoice=e,
                          documentType=invoice.documentType)


def einvoice_xml(ctx: Context, invoice: Invoice) -> tuple[str, bytes] | None:
    """(format, XML) for a customer who gets an e-invoice: `ubl` (a file beside the PDF) or
    `factur-x` (CII, embedded in the PDF itself); None: they do not. Raises EInvoiceError."""
    customer = ctx.directory.customers.get(invoice.customerReference)
    kind = einvoice.wanted(customer, invoice, ctx.settings.einvoice_default)
    if kind not in ("ubl", "factur-x"):
        return None
    # a credit note has nothing to pay: its due date (BT-9) is its issue date, no terms
    terms = None if invoice.is_credit_note else payment_terms(invoice, ctx.services.catalogs.localizer(invoice.locale))
    model = einvoice.from_invoice(invoice, ctx.services.einvoice_seller, einvoice.buyer_party(customer, invoice),
                                  payment_terms=terms)
    return kind, (ubl(model) if kind == "ubl" else cii(model))


async def document(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    invoice: Invoice = parse(Invoice, event.value)
    iid = invoice.record_id  # a credit note's records: `<interactionId>~<creditNumber>`
    source = source_of(event)
    now = ctx.clock()
    # no entry: billing's writes were lost in a crash after the invoice went out. The entry
    # keeps the invoice, as billing's would have: billing reads it again and keeps its number
    # (agents/series.py catch_up), and a credit note can still find it.
    entry = ctx.ledger.get(iid) or LedgerEntry(state=State.BILLED, firstSeen=now, updatedAt=now,
                                               invoiceNumber=invoice.invoiceNumber, invoice=invoice)
    reissue = header(event, headers.REISSUE)  # callbill replay --force-reissue: render and send again
    # stored once: in any later state, a review by delivery included (re-rendering would
    # overwrite that review's state in the ledger)
    if entry.documentKey and not reissue:
        if entry.documentSource == source and entry.document:
            # redelivered: the document message may not have landed; same object, fresh link
            doc = entry.document
            x = doc.einvoice
            again = await stored(ctx, invoice, doc.key, doc.sha256, doc.size, (x.key, x.sha256, x.size) if x else None)
            again = again.model_copy(update={"facturx": doc.facturx})
            await ctx.publish("callbill.documents", iid, again, wait=False)
            # the same decision again: its first audit record may have been lost with the crash
            await ctx.audit(STAGE, iid, "DOCUMENTED", f"{doc.key} (republished after a restart)")
        else:
            await ctx.audit(STAGE, iid, "ALREADY_DOCUMENTED", entry.documentKey)
        return

    await ctx.directory.ready()
    try:
        wanted = einvoice_xml(ctx, invoice)  # before anything is stored: a customer who needs one gets both or neither
    except einvoice.EInvoiceError as e:
        # the text names the rule or the field, never a value
        ctx.ledger.put(iid, entry.touched(ctx.clock(), state=State.REVIEW, reason="EINVOICE_FAILED"))
        await ctx.review(STAGE, iid, "EINVOICE_FAILED", detail=f"the e-invoice cannot be written: {e}")
        await ctx.audit(STAGE, iid, "REVIEW", "EINVOICE_FAILED")
        return
    xml = wanted[1] if wanted and wanted[0] == "ubl" else None
    facturx = wanted[1] if wanted and wanted[0] == "factur-x" else None
    try:
        key = document_key(invoice.invoiceNumber, invoice.issueDate.year, invoice.issueDate.month)
        pdf = await ctx.services.renderer.render(invoice, ctx.services.seller, buyer_for(ctx, invoice), facturx)
    except Exception as e:  # noqa: BLE001 - a render failure needs a person, not a retry loop
        ctx.ledger.put(iid, entry.touched(ctx.clock(), state=State.REVIEW, reason="RENDER_FAILED"))
        await ctx.review(STAGE, iid, "RENDER_FAILED", detail=f"the invoice PDF could not be rendered ({error_site(e)})")
        await ctx.audit(STAGE, iid, "REVIEW", "RENDER_FAILED")
        return
    sha = hashlib.sha256(pdf).hexdigest()
    parked = await store_pdf(ctx, key, pdf, f"{invoice.invoiceNumber}.pdf", sha, batch)
    xml_stored = None
    if parked is None and xml is not None:
        xml_key, xml_sha = key.removesuffix(".pdf") + ".xml", hashlib.sha256(xml).hexdigest()
        parked = await store_pdf(ctx, xml_key, xml, f"{invoice.invoiceNumber}.xml", xml_sha, batch, "application/xml")
        xml_stored = (xml_key, xml_sha, len(xml))
    entry = ctx.ledger.get(iid) or entry
    if parked is not None:
        await park(ctx, STAGE, event, iid, "callbill.invoices", invoice, parked)
        return
    doc = await stored(ctx, invoice, key, sha, len(pdf), xml_stored)
    if facturx is not None:
        doc = doc.model_copy(update={"facturx": True})
    entry = ctx.ledger.get(iid) or entry
    state = entry.state if entry.state is State.DELIVERED else State.DOCUMENTED
    ctx.ledger.put(iid, entry.touched(ctx.clock(), state=state, reason=None, documentKey=key,
                                 document=doc, documentSource=source))
    await ctx.publish("callbill.documents", iid, doc, wait=False,
                  headers={headers.REISSUE: reissue.encode()} if reissue else None)
    await ctx.audit(STAGE, iid, "REISSUED" if reissue else "DOCUMENTED", key)


async def document_one(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    # a StorageError here (not in store_pdf) means the link could not be signed: retried
    with event_context(event):
        await guard_one(ctx, STAGE, event, lambda e: document(ctx, e, batch), transient=(StorageError,))


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.invoices"], name="documents")
    async def documents(stream: faust.StreamT) -> None:
        await run_batches(stream, STAGE, ctx.settings.documents_batch, ctx.settings.batch_window,
                          lambda e, b: document_one(ctx, e, b))
