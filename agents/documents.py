"""callbill.invoices -> a PDF in object storage -> callbill.documents.

The object key is derived from the invoice (`invoices/<yyyy>/<mm>/<number>.pdf`) and the
rendering is deterministic, so storing again is harmless. Storage errors back off inside
the batch while others are busy, then the invoice is parked on callbill.retry (back to
callbill.invoices when due): never dropped. A render failure needs a person: review.
"""
from __future__ import annotations

import hashlib

import faust

from adapters.storage import StorageError
from agents.batching import Batch, Parked, park, run_batches, with_backoff
from agents.routing import (audit, event_context, guard_one, header, parse, publish, review,
                            source_of)
from app import storage
from runtime import headers
from runtime.logs import error_site, get_logger
from app.main import app, settings, topics
from domain.invoice_pdf import Buyer
from domain.ledger import LedgerEntry, State
from domain.links import document_key
from schemas.documents import DocumentStored
from schemas.events import utcnow
from schemas.invoices import Invoice
from tables.directory import directory
from tables.ledger import get_entry, put_entry

STAGE = "documents"
log = get_logger("documents")


def buyer_for(invoice: Invoice) -> Buyer:
    c = directory.customers.get(invoice.customerReference)
    if c is None:
        return Buyer(name=None, reference=invoice.customerReference)
    a = c.postalAddress
    lines: tuple[str, ...] = ()
    if a:
        city = " ".join(x for x in (a.postalCode, a.city) if x)
        lines = tuple(x for x in (a.line1, a.line2, ", ".join(y for y in (city, a.region) if y), a.country) if x)
    return Buyer(name=c.name, address=lines, reference=invoice.customerReference)


async def store_pdf(key: str, pdf: bytes, filename: str, sha: str, batch: Batch) -> Parked | None:
    parked = await with_backoff(lambda: storage.store().put(key, pdf, filename=filename, sha256=sha), StorageError,
                                batch, settings.storage_attempts, "storage", lambda e: e.reason.lower())
    return parked if isinstance(parked, Parked) else None


async def stored(invoice: Invoice, key: str, sha: str, size: int) -> DocumentStored:
    url, expires = await storage.store().link(key, settings.link_ttl, f"{invoice.invoiceNumber}.pdf")
    return DocumentStored(interactionId=invoice.interactionId, invoiceNumber=invoice.invoiceNumber, key=key, sha256=sha,
                          size=size, storage=storage.kind(), url=url, expiresAt=expires,
                          renewUrl=storage.renew_url(invoice.invoiceNumber, key))


async def document(event: faust.EventT, batch: Batch) -> None:
    invoice: Invoice = parse(Invoice, event.value)
    iid = invoice.interactionId
    source = source_of(event)
    now = utcnow()
    entry = get_entry(iid) or LedgerEntry(state=State.BILLED, firstSeen=now, updatedAt=now,
                                          invoiceNumber=invoice.invoiceNumber)
    reissue = header(event, headers.REISSUE)  # callbill replay --force-reissue: render and send again
    # stored once: in any later state, a review by delivery included (re-rendering would
    # overwrite that review's state in the ledger)
    if entry.documentKey and not reissue:
        if entry.documentSource == source and entry.document:
            # redelivered: the document message may not have landed; same object, fresh link
            doc = DocumentStored.model_validate(entry.document)
            await publish("callbill.documents", iid, await stored(invoice, doc.key, doc.sha256, doc.size), wait=False)
            # the same decision again: its first audit record may have been lost with the crash
            await audit(STAGE, iid, "DOCUMENTED", f"{doc.key} (republished after a restart)")
        else:
            await audit(STAGE, iid, "ALREADY_DOCUMENTED", entry.documentKey)
        return

    await directory.ready()
    try:
        key = document_key(invoice.invoiceNumber, invoice.issueDate.year, invoice.issueDate.month)
        pdf = await storage.renderer().render(invoice, storage.seller(), buyer_for(invoice))
    except Exception as e:  # noqa: BLE001 - a render failure needs a person, not a retry loop
        put_entry(iid, entry.touched(utcnow(), state=State.REVIEW, reason="RENDER_FAILED"))
        await review(STAGE, iid, "RENDER_FAILED", detail=f"the invoice PDF could not be rendered ({error_site(e)})")
        await audit(STAGE, iid, "REVIEW", "RENDER_FAILED")
        return
    sha = hashlib.sha256(pdf).hexdigest()
    parked = await store_pdf(key, pdf, f"{invoice.invoiceNumber}.pdf", sha, batch)
    entry = get_entry(iid) or entry
    if parked is not None:
        await park(STAGE, event, iid, "callbill.invoices", invoice, parked)
        return
    doc = await stored(invoice, key, sha, len(pdf))
    entry = get_entry(iid) or entry
    state = entry.state if entry.state is State.DELIVERED else State.DOCUMENTED
    put_entry(iid, entry.touched(utcnow(), state=state, reason=None, documentKey=key,
                                 document=doc.model_dump(mode="json"), documentSource=source))
    await publish("callbill.documents", iid, doc, wait=False,
                  headers={headers.REISSUE: reissue.encode()} if reissue else None)
    await audit(STAGE, iid, "REISSUED" if reissue else "DOCUMENTED", key)


async def document_one(event: faust.EventT, batch: Batch) -> None:
    # a StorageError here (not in store_pdf) means the link could not be signed: retried
    with event_context(event):
        await guard_one(STAGE, event, lambda e: document(e, batch), transient=(StorageError,))


@app.agent(topics["callbill.invoices"], name="documents")
async def documents(stream: faust.StreamT) -> None:
    await run_batches(stream, STAGE, settings.documents_batch, settings.batch_window, document_one)
