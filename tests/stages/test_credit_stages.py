"""Credit notes through the real stages: credits -> documents (the PDF, the UBL) -> delivery (a
real SMTP server), exactly once by the request's key, bounded by the invoice, every crash window
read again, and with the reference ERP issuing them."""
from __future__ import annotations

import asyncio
import io
import re
from decimal import Decimal
from email.header import decode_header, make_header

from pypdf import PdfReader

from adapters.facturx import xml_of
from devtools.reference_erp import ReferenceErp
from domain.bounces import interaction_of
from domain.ledger import State
from domain.numbering import counter_key
from en16931_check import fatal
from pipeline import Pipeline
from schemas.credits import CreditRequest
from stage_context import make_context
from test_delivery_paths import billable, cust, load, smtp

D = Decimal
DE = {"line1": "Ring 2", "city": "Wien", "postalCode": "1010", "country": "AT"}


def request(iid: str, number: str, **kw) -> CreditRequest:
    return CreditRequest(interactionId=iid, invoiceNumber=number, reason=kw.pop("reason", "Disputed call"),
                         actor="ops@example.com", **kw)


def outcomes(ctx) -> list[dict]:
    return ctx.out("callbill.credit-notes")


def pdf_text(path) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages)
                  ).replace("\xa0", " ").replace("\u202f", " ")


async def invoiced(p: Pipeline, iid: str, customer: str) -> dict:
    await p.send("callbill.billable", billable(iid, customer))
    await p.settle()
    return next(i for i in p.ctx.out("callbill.invoices") if i["interactionId"] == iid)


def test_a_credit_note_is_rendered_stored_and_mailed_in_the_customers_language(tmp_path, mail_sink):
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), seller_country="DE", seller_tax_id="DE136695976")

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-AT", name="Alpen Consulting GmbH", email="rechnung@alpen.example", currency="EUR",
                                locale="de-AT", timezone="Europe/Vienna", taxId="ATU13585627", postalAddress=DE,
                                einvoice="ubl")])
            inv = await invoiced(p, "cn-1", "C-AT")
            await p.send("callbill.credit-requests", request("cn-1", inv["invoiceNumber"]))
            await p.settle()
            return inv
    inv = asyncio.run(go())
    (out,) = outcomes(ctx)
    assert (out["status"], out["creditNumber"], D(out["total"]), D(out["creditedTotal"])) == (
        "ISSUED", "CN00-000001", D(inv["total"]), D(inv["total"]))
    note = ctx.out("callbill.invoices")[-1]
    assert note["documentType"] == "creditNote" and note["precedingInvoice"]["invoiceNumber"] == inv["invoiceNumber"]
    assert note["reverseCharge"] and note["lineItems"] == inv["lineItems"]
    # the note's own records, beside the invoice's: each delivered once
    entry, note_entry = ctx.ledger.get("cn-1"), ctx.ledger.get("cn-1~CN00-000001")
    assert entry.state is State.DELIVERED and [c.creditNumber for c in entry.credits] == ["CN00-000001"]
    assert note_entry.state is State.DELIVERED and note_entry.invoice.is_credit_note
    doc = ctx.out("callbill.documents")[-1]
    assert doc["documentType"] == "creditNote" and doc["key"].endswith("/CN00-000001.pdf")
    text = pdf_text(tmp_path / "store" / doc["key"])
    for expected in ("GUTSCHRIFT", "Gutschriftsnummer", "CN00-000001", "Berichtigte Rechnung", inv["invoiceNumber"],
                     "Gutschriftsbetrag", "Grund: Disputed call", "Steuerschuldnerschaft des Leistungsempfängers"):
        assert expected in text, (expected, text)
    assert "Fälligkeitsdatum" not in text and "Zahlungsbedingungen" not in text
    xml = (tmp_path / "store" / doc["einvoice"]["key"]).read_bytes()
    assert b"<CreditNote " in xml and b"<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>" in xml
    assert inv["invoiceNumber"].encode() in xml  # BG-3
    assert fatal(xml) == [], [(f.rule, f.text) for f in fatal(xml)]
    invoice_mail, note_mail = mail_sink.messages()
    assert str(make_header(decode_header(note_mail["Subject"]))) == "Ihre Gutschrift CN00-000001"
    body = note_mail.get_body(("plain",)).get_content()
    assert f"Sie berichtigt die Rechnung {inv['invoiceNumber']}" in body and "Gutgeschriebener Betrag" in body
    assert "Fälligkeitsdatum" not in body and "Alpen" not in str(note_mail["Subject"])
    assert note_mail["Message-ID"] != invoice_mail["Message-ID"]
    assert interaction_of(str(note_mail["Message-ID"])) == "cn-1~CN00-000001"  # a bounce finds the note's records
    (delivered,) = [d for d in ctx.out("callbill.deliveries") if d.get("kind") == "creditNote"]
    assert (delivered["interactionId"], delivered["invoiceNumber"]) == ("cn-1", "CN00-000001")
    audit = [a for a in ctx.out("callbill.audit") if a["stage"] == "credits"]
    assert [a["outcome"] for a in audit] == ["CREDITED"] and audit[0]["actor"] == "ops@example.com"
    assert all("Alpen" not in (a.get("reason") or "") for a in ctx.out("callbill.audit"))


def test_one_credit_note_per_key_and_never_more_than_the_invoice(tmp_path, mail_sink):
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink))

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-1", email="c1@example.com")])
            inv = await invoiced(p, "cn-2", "C-1")
            number = inv["invoiceNumber"]
            first = request("cn-2", number, amount=D("5.00"))
            for r in (first, first.model_copy(update={"actor": "someone-else"}),  # the same key: the same note
                      request("cn-2", number, amount=D("10000.00")),  # more than is left
                      request("cn-2", number, lines=[9]),  # no such line
                      request("cn-2", "INV00-999999"),  # not this interaction's invoice
                      request("cn-2", number, reason="the rest"),  # what remains, in full
                      request("cn-2", number, reason="once more")):  # nothing remains
                await p.send("callbill.credit-requests", r)
                await p.settle()
            return inv
    inv = asyncio.run(go())
    got = [(o["status"], o.get("creditNumber"), o.get("reason"), o["again"]) for o in outcomes(ctx)]
    assert got == [("ISSUED", "CN00-000001", None, False), ("ISSUED", "CN00-000001", None, True),
                   ("REFUSED", None, "EXCEEDS_INVOICE", False), ("REFUSED", None, "NO_SUCH_LINE", False),
                   ("REFUSED", None, "NO_SUCH_INVOICE", False), ("ISSUED", "CN00-000002", None, False),
                   ("REFUSED", None, "ALREADY_CREDITED", False)]
    entry = ctx.ledger.get("cn-2")
    assert [c.creditNumber for c in entry.credits] == ["CN00-000001", "CN00-000002"]
    assert entry.credited <= D(inv["total"]) and D(inv["total"]) - entry.credited < D("0.02")
    assert ctx.ledger.table[counter_key("CN00")] == {"seq": 2}
    notes = [i for i in ctx.out("callbill.invoices") if i.get("documentType") == "creditNote"]
    assert [n["invoiceNumber"] for n in notes] == ["CN00-000001", "CN00-000002"]  # the repeat published nothing
    subjects = sorted(str(m["Subject"]) for m in mail_sink.messages())
    assert subjects == ["Your credit note CN00-000001", "Your credit note CN00-000002",
                        f"Your invoice {inv['invoiceNumber']}"]


def test_a_request_read_again_after_a_crash_is_still_one_credit_note(tmp_path, mail_sink):
    """Each window of the credits stage, as a redelivery meets it: every write landed but the
    note's message (republished); the counter lost (caught up); documents and delivery read
    again (one PDF, one email)."""
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink))

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-1", email="c1@example.com")])
            inv = await invoiced(p, "cn-3", "C-1")
            await p.send("callbill.credit-requests", request("cn-3", inv["invoiceNumber"], amount=D("10.00")))
            await p.settle()
            ctx.ledger.table[counter_key("CN00")] = {"seq": 0}  # the counter's write was lost with the crash
            await p.again("callbill.credit-requests", 0)
            await p.settle()
            notes = [i for i in ctx.out("callbill.invoices") if i.get("documentType") == "creditNote"]
            await p.again("callbill.invoices", len(ctx.out("callbill.invoices")) - 1)
            await p.again("callbill.documents", len(ctx.out("callbill.documents")) - 1)
            await p.settle()
            # the next request is numbered after the first, not over it
            await p.send("callbill.credit-requests", request("cn-3", inv["invoiceNumber"], reason="the rest"))
            await p.settle()
            return notes
    notes = asyncio.run(go())
    assert [n["invoiceNumber"] for n in notes] == ["CN00-000001", "CN00-000001"]  # republished, same note
    assert [o["again"] for o in outcomes(ctx)] == [False, False, False], outcomes(ctx)
    assert [o.get("creditNumber") for o in outcomes(ctx)] == ["CN00-000001", "CN00-000001", "CN00-000002"], outcomes(ctx)
    credits = [a["outcome"] for a in ctx.out("callbill.audit") if a["stage"] == "credits"]
    assert credits == ["CREDITED", "CREDITED", "CREDITED"]
    assert [c.creditNumber for c in ctx.ledger.get("cn-3").credits] == ["CN00-000001", "CN00-000002"]
    mails = [str(m["Subject"]) for m in mail_sink.messages()]
    assert mails.count("Your credit note CN00-000001") == 1 and mails.count("Your credit note CN00-000002") == 1


def test_a_stale_series_counter_never_gives_a_number_twice(tmp_path, mail_sink):
    """The counter coming back behind its entries (seen after a kill -9 under load): the claims
    of the numbers already given make billing skip them, so the series stays one number per invoice."""
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink))

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-1", email="c1@example.com")])
            for i in range(3):
                await p.send("callbill.billable", billable(f"st-{i}", "C-1"))
            await p.settle()
            ctx.ledger.table[counter_key("INV00")] = {"seq": 1}
            await p.send("callbill.billable", billable("st-3", "C-1"))
            await p.settle()
    asyncio.run(go())
    numbers = {i["interactionId"]: i["invoiceNumber"] for i in ctx.out("callbill.invoices")}
    assert numbers == {"st-0": "INV00-000001", "st-1": "INV00-000002", "st-2": "INV00-000003", "st-3": "INV00-000004"}
    assert ctx.ledger.table[counter_key("INV00")] == {"seq": 4}


def test_billings_writes_lost_after_the_invoice_went_out_keep_one_number_per_invoice(tmp_path, mail_sink):
    """The kill test's case (tests/integration/test_billing.py): the invoice of `lw-1` was
    published, then the worker was killed before billing's claim, entry and counter reached the
    changelog, and before any offset was committed. Read again, documents meets the invoice
    first and writes the entry from it; then billing reads `lw-1` again. It keeps its number,
    the claim and the counter catch up, and the next interaction gets the next number (it got
    `lw-1`'s before: two invoices with one number). The invoice can still be credited."""
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink))

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-1", email="c1@example.com")])
            for iid in ("lw-0", "lw-1"):
                await invoiced(p, iid, "C-1")
            # what the changelog kept: nothing billing, documents or delivery wrote for lw-1
            for key in ("lw-1", "#number:INV00-000002"):
                ctx.ledger.table.pop(key, None)
            ctx.ledger.table[counter_key("INV00")] = {"seq": 1}
            await p.again("callbill.invoices", 1)
            await p.settle()
            assert ctx.ledger.get("lw-1").invoice.invoiceNumber == "INV00-000002"  # from the invoice read again
            await p.again("callbill.billable", 1)
            await p.send("callbill.billable", billable("lw-2", "C-1"))
            await p.settle()
            await p.send("callbill.credit-requests", request("lw-1", "INV00-000002", amount=D("1.00")))
            await p.settle()
    asyncio.run(go())
    numbers: dict[str, set[str]] = {}
    for i in ctx.out("callbill.invoices"):
        if i.get("documentType") != "creditNote":
            numbers.setdefault(i["interactionId"], set()).add(i["invoiceNumber"])
    assert numbers == {"lw-0": {"INV00-000001"}, "lw-1": {"INV00-000002"}, "lw-2": {"INV00-000003"}}
    assert ctx.ledger.table["#number:INV00-000002"] == {"id": "lw-1"}
    assert ctx.ledger.table[counter_key("INV00")] == {"seq": 3}
    assert [o["status"] for o in outcomes(ctx)] == ["ISSUED"], outcomes(ctx)


def test_with_an_erp_the_erp_issues_the_credit_note_under_the_same_key(tmp_path, mail_sink):
    erp = ReferenceErp(token="erp-token").start()
    try:
        ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), erp_url=erp.url, erp_token="erp-token",
                           retry_base_delay=0.2, retry_max_delay=0.5, erp_attempts=2, backoff_base=0.01,
                           backoff_cap=0.02)

        async def go():
            async with Pipeline(ctx) as p:
                await load(p, [cust("C-1", email="c1@example.com")])
                inv = await invoiced(p, "cn-e", "C-1")
                ask = request("cn-e", inv["invoiceNumber"], amount=D("10.00"))
                erp.call(lambda: erp.behaviour.fail_keys.add(ask.key()))  # the ERP is down for this request
                await p.send("callbill.credit-requests", ask)
                await p.settle(until=lambda: any(o["status"] == "WAITING" for o in outcomes(ctx)))
                erp.call(lambda: erp.behaviour.fail_keys.clear())
                await p.settle(until=lambda: any(o["status"] == "ISSUED" for o in outcomes(ctx)))
                await p.settle()
                await p.send("callbill.credit-requests", ask)  # the same request again
                await p.settle()
                erp.call(lambda: erp.credited.update({inv["invoiceNumber"]: D(inv["total"])}))  # credited elsewhere
                await p.send("callbill.credit-requests", request("cn-e", inv["invoiceNumber"], reason="the rest"))
                await p.settle()
                return inv, ask, erp.call(erp.stats)
        inv, ask, stats = asyncio.run(go())
    finally:
        erp.stop()
    statuses = [(o["status"], o.get("reason") or "") for o in outcomes(ctx)]
    assert statuses[0][0] == "WAITING" and statuses[0][1].startswith("ERP_HTTP_503")
    issued = [o for o in outcomes(ctx) if o["status"] == "ISSUED"]
    assert [o["creditNumber"].startswith("ERP-CN-") for o in issued] == [True, True]
    assert issued[0]["creditNumber"] == issued[1]["creditNumber"] and issued[1]["again"]
    assert stats["creates"][ask.key()] == 1  # one credit note at the ERP
    assert statuses[-1] == ("REVIEW", "ERP_REJECTED:EXCEEDS_INVOICE")
    rid = f"cn-e~{request('cn-e', inv['invoiceNumber'], reason='the rest').key()}"
    assert ctx.reviews.get(rid).reason == "ERP_REJECTED:EXCEEDS_INVOICE"
    assert ctx.reviews.get(rid).interaction["reason"] == "the rest"  # resubmittable as asked
    mails = [str(m["Subject"]) for m in mail_sink.messages()]
    assert mails == [f"Your invoice {inv['invoiceNumber']}", f"Your credit note {issued[0]['creditNumber']}"]


def test_a_postal_factur_x_customer_gets_a_factur_x_credit_note_with_a_german_cover(tmp_path):
    """Maria Keller (samples): postal only, Factur-X. Her credit note's PDF carries a CII credit
    note (type 381, BG-3) that passes the official rules; the print job's cover says what it is."""
    ctx = make_context(tmp_path, seller_tax_id="12-3456789")  # the samples' directory is loaded

    async def go():
        async with Pipeline(ctx) as p:
            inv = await invoiced(p, "cn-fx", "CUST-7770003")
            await p.send("callbill.credit-requests", request("cn-fx", inv["invoiceNumber"], reason="Doppelt berechnet"))
            await p.settle()
            return inv
    inv = asyncio.run(go())
    doc = ctx.out("callbill.documents")[-1]
    assert doc["documentType"] == "creditNote" and doc["facturx"]
    xml = xml_of((tmp_path / "store" / doc["key"]).read_bytes())
    assert b"<ram:TypeCode>381</ram:TypeCode>" in xml and inv["invoiceNumber"].encode() in xml
    assert fatal(xml) == [], [(f.rule, f.text) for f in fatal(xml)]
    invoice_job, note_job = ctx.out("callbill.postal")
    assert note_job["invoiceNumber"] == "CN00-000001" and note_job["locale"] == "de-DE"
    assert note_job["coverText"].startswith("Anbei erhalten Sie die Gutschrift CN00-000001 von ")
    assert f"zur Rechnung {inv['invoiceNumber']}" in note_job["coverText"] and "Keller" not in note_job["coverText"]
