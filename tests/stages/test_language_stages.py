"""The customer's language and the VAT rules through the real stages: billing (with VIES on a
loopback server), documents (the stored PDF), delivery (a real SMTP server, the postal job)."""
from __future__ import annotations

import asyncio
import io
import json
import re
from datetime import datetime, timedelta, timezone

from aiohttp import web
from pypdf import PdfReader

from agents import billing, delivery, documents
from agents.batching import Batch
from domain.ledger import State
from schemas.documents import DocumentStored
from schemas.events import InteractionCompleted
from schemas.invoices import Invoice
from stage_context import event, make_context

ENDED = datetime(2026, 11, 24, 22, 20, tzinfo=timezone.utc)
AT_VAT, DE_VAT = "ATU13585627", "DE136695976"
SELLER_DE = {"seller_country": "DE", "seller_tax_id": DE_VAT}


def add_customer(ctx, **fields) -> None:
    record = {"customerId": "CUST-AT-1", "name": "Alpen Consulting GmbH", "email": "rechnung@alpen.example",
              "currency": "EUR", "locale": "de-AT", "timezone": "Europe/Vienna", "taxId": AT_VAT,
              "postalAddress": {"line1": "Ring 2", "city": "Wien", "postalCode": "1010", "country": "AT"}, **fields}
    ctx.directory.apply(record["customerId"], json.dumps(record).encode())


def interaction(iid: str, customer: str = "CUST-AT-1") -> InteractionCompleted:
    return InteractionCompleted(interactionId=iid, source="webhook", customerId=customer, endedAt=ENDED,
                                startedAt=ENDED - timedelta(seconds=300), durationSeconds=300,
                                serviceType="Consultation Service - Level 2", wrapupCode="Billable Service")


async def bill(ctx, iid: str, customer: str = "CUST-AT-1", offset: int = 1) -> None:
    await billing.bill(ctx, event(interaction(iid, customer), topic="callbill.billable", offset=offset),
                       Batch(1, "billing"))


async def through_delivery(ctx, iid: str, read_twice: bool = False) -> DocumentStored:
    """One interaction billed, documented (twice: a redelivery) and delivered; its document message."""
    await bill(ctx, iid)
    invoice = Invoice.model_validate(ctx.out("callbill.invoices")[-1])
    e = event(invoice, topic="callbill.invoices", offset=2)
    for _ in range(2 if read_twice else 1):
        await documents.document(ctx, e, Batch(1, "documents"))
    doc = DocumentStored.model_validate(ctx.out("callbill.documents")[-1])
    await delivery.deliver(ctx, event(doc, topic="callbill.documents", offset=3), Batch(1, "delivery"))
    return doc


def pdf_text(path) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages)
                  ).replace("\xa0", " ").replace("\u202f", " ")


def test_a_german_speaking_b2b_customer_gets_a_reverse_charge_invoice_pdf_and_email_in_german(tmp_path, mail_sink):
    ctx = make_context(tmp_path, smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off", **SELLER_DE)
    add_customer(ctx)

    async def go() -> None:
        await bill(ctx, "gen-at-1")
        invoice = Invoice.model_validate(ctx.out("callbill.invoices")[-1])
        assert (invoice.locale, invoice.reverseCharge, invoice.buyerTaxId, invoice.taxTotal) == (
            "de-AT", True, AT_VAT, 0)
        assert invoice.lineItems[0].description == "Beratungsleistung – Stufe 2 (Minuten 1–5)"  # the rate card's German text, a tier
        await documents.document(ctx, event(invoice, topic="callbill.invoices", offset=2), Batch(1, "documents"))
        doc = DocumentStored.model_validate(ctx.out("callbill.documents")[-1])
        text = pdf_text(tmp_path / "store" / doc.key)
        for expected in ("RECHNUNG", "Rechnungsempfänger", "Alpen Consulting GmbH", f"USt-IdNr.: {AT_VAT}",
                         f"USt-IdNr.: {DE_VAT}", "Steuerschuldnerschaft des Leistungsempfängers", "€ 12,00",
                         "Seite 1 von 1", "24.11.2026"):
            assert expected in text, (expected, text)
        await delivery.deliver(ctx, event(doc, topic="callbill.documents", offset=3), Batch(1, "delivery"))

    asyncio.run(go())
    assert ctx.outcomes("delivery") == ["DELIVERED"]
    (mail,) = mail_sink.messages()
    from email.header import decode_header, make_header

    assert str(make_header(decode_header(mail["Subject"]))) == "Ihre Rechnung INV00-000001"
    body = mail.get_body(("plain",)).get_content()
    assert "Guten Tag Alpen Consulting GmbH," in body and "Fälliger Betrag: € 12,00" in body.replace("\xa0", " ")
    assert "Fälligkeitsdatum: 24.12.2026" in body
    html = mail.get_body(("html",)).get_content()
    assert 'lang="de-AT"' in html and "Rechnung herunterladen (PDF)" in html


def test_a_postal_customer_gets_the_cover_text_in_their_language(tmp_path):
    ctx = make_context(tmp_path, seller_tax_id="12-3456789")  # the sample's Maria Keller gets Factur-X

    async def go() -> None:
        await bill(ctx, "gen-de-post", customer="CUST-7770003")  # Maria Keller: de_DE, postal only
        invoice = Invoice.model_validate(ctx.out("callbill.invoices")[-1])
        await documents.document(ctx, event(invoice, topic="callbill.invoices", offset=2), Batch(1, "documents"))
        doc = DocumentStored.model_validate(ctx.out("callbill.documents")[-1])
        await delivery.deliver(ctx, event(doc, topic="callbill.documents", offset=3), Batch(1, "delivery"))

    asyncio.run(go())
    (job,) = ctx.out("callbill.postal")
    assert ctx.out("callbill.documents")[-1]["facturx"]  # her record asks for Factur-X: the letter's PDF is one
    assert job["locale"] == "de-DE"
    assert job["coverText"].startswith("Anbei erhalten Sie die Rechnung INV00-000001")
    assert "Keller" not in job["coverText"]


class FakeVies:
    """The VIES REST endpoint on loopback: a registered number, one VIES does not know, or down."""

    def __init__(self) -> None:
        self.registered = {("AT", "U13585627")}
        self.down = False
        self.asked = 0
        app = web.Application()
        app.router.add_get("/ms/{country}/vat/{number}", self.check)
        self.runner = web.AppRunner(app)

    async def check(self, request: web.Request) -> web.Response:
        self.asked += 1
        if self.down:
            return web.json_response({"isValid": False, "userError": "MS_UNAVAILABLE"})
        key = (request.match_info["country"], request.match_info["number"])
        return web.json_response({"countryCode": key[0], "vatNumber": key[1], "isValid": key in self.registered,
                                  "userError": "VALID" if key in self.registered else "INVALID"})

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the port the OS chose
        return f"http://127.0.0.1:{port}"


def test_vies_confirms_a_reverse_charge_once_refuses_an_unknown_number_and_follows_the_rule_when_down(tmp_path):
    vies = FakeVies()

    async def go() -> None:
        url = await vies.start()
        try:
            ctx = make_context(tmp_path / "a", vies="on", vies_url=url, **SELLER_DE)
            add_customer(ctx)
            await bill(ctx, "gen-v1", offset=1)
            await bill(ctx, "gen-v2", offset=2)
            assert [i["reverseCharge"] for i in ctx.out("callbill.invoices")] == [True, True]
            assert vies.asked == 1  # cached: the same customer's second invoice asks no more
            # a number with valid check digits that VIES does not know (DE 136695976 is the seller's own)
            add_customer(ctx, customerId="CUST-AT-2", taxId="ATU10223006")
            await bill(ctx, "gen-v3", customer="CUST-AT-2", offset=3)
            assert ctx.out("callbill.review")[-1]["reason"] == "INVALID_VAT_ID"
            assert ctx.ledger.get("gen-v3").state is State.REVIEW and len(ctx.out("callbill.invoices")) == 2
            vies.down = True
            add_customer(ctx, customerId="CUST-AT-3", taxId="ATU12345675")
            await bill(ctx, "gen-v4", customer="CUST-AT-3", offset=4)
            assert ctx.out("callbill.review")[-1]["reason"] == "VAT_ID_UNCONFIRMED"
            assert len(ctx.out("callbill.invoices")) == 2  # no zero-rated invoice on a guess
            charge = make_context(tmp_path / "b", vies="on", vies_url=url, vies_unavailable="charge_vat", **SELLER_DE)
            add_customer(charge, customerId="CUST-AT-3", taxId="ATU12345675")
            await bill(charge, "gen-v5", customer="CUST-AT-3", offset=5)
            (inv,) = charge.out("callbill.invoices")
            assert not inv.get("reverseCharge") and inv["taxTotal"] != "0.00" and inv["buyerTaxId"] == "ATU12345675"
            gone = make_context(tmp_path / "c", vies="on", vies_url="http://127.0.0.1:9", vies_timeout=1, **SELLER_DE)
            add_customer(gone)
            await bill(gone, "gen-v6", offset=6)
            assert gone.out("callbill.review")[-1]["reason"] == "VAT_ID_UNCONFIRMED"
            for c in (ctx, charge, gone):
                await c.services.vies.close()
        finally:
            await vies.runner.cleanup()

    asyncio.run(go())


def test_a_malformed_vat_number_goes_to_review_and_no_invoice_is_issued(tmp_path):
    ctx = make_context(tmp_path, **SELLER_DE)
    add_customer(ctx, taxId="ATU1358562")  # a digit short

    asyncio.run(bill(ctx, "gen-bad-vat"))
    assert ctx.outcomes("billing") == ["REVIEW"] and not ctx.out("callbill.invoices")
    (review,) = ctx.out("callbill.review")
    assert review["reason"] == "INVALID_VAT_ID" and "ATU1358562" not in json.dumps(review)


def test_an_einvoice_customer_gets_the_ubl_beside_the_pdf_linked_in_the_email(tmp_path, mail_sink):
    from en16931_check import fatal

    ctx = make_context(tmp_path, smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off", **SELLER_DE)
    add_customer(ctx, einvoice="ubl")
    doc = asyncio.run(through_delivery(ctx, "gen-ubl-1", read_twice=True))  # read again: republished, both links
    first, again = (DocumentStored.model_validate(d) for d in ctx.out("callbill.documents"))
    assert first.einvoice and again.einvoice and first.einvoice.key == again.einvoice.key
    assert doc.einvoice.key == doc.key.removesuffix(".pdf") + ".xml" and doc.einvoice.format == "ubl"
    xml = (tmp_path / "store" / doc.einvoice.key).read_bytes()
    assert b"<cbc:CompanyID>ATU13585627</cbc:CompanyID>" in xml and b"<cbc:ID>AE</cbc:ID>" in xml
    assert fatal(xml) == []  # the official EN 16931 rules
    meta = json.loads((tmp_path / "store" / (doc.einvoice.key + ".json")).read_text())
    assert meta["contentType"] == "application/xml"
    assert json.loads((tmp_path / "store" / doc.key.replace(".pdf", ".json")).read_text())["contentType"] == \
        "application/pdf"  # the PDF's record where it always was
    (mail,) = mail_sink.messages()
    body = mail.get_body(("plain",)).get_content()
    assert "Die E-Rechnung (XML, EN 16931) für Ihre Buchhaltung:" in body and "/files/invoices/" in body
    assert doc.einvoice.url in body
    assert "E-Rechnung herunterladen (XML)" in mail.get_body(("html",)).get_content()


def test_who_gets_an_einvoice_and_one_that_cannot_be_written_goes_to_review(tmp_path):
    ctx = make_context(tmp_path, einvoice_default="ubl", **SELLER_DE)
    add_customer(ctx)  # a business customer (a VAT number), no choice of its own: the seller's default
    add_customer(ctx, customerId="CUST-B2C", taxId=None)  # a consumer: none
    add_customer(ctx, customerId="CUST-NO-COUNTRY", taxId=None, einvoice="ubl",
                 postalAddress={"line1": "Ring 2", "city": "Wien"})

    async def go() -> None:
        for n, cust in enumerate(("CUST-AT-1", "CUST-B2C", "CUST-NO-COUNTRY"), 1):
            await bill(ctx, f"gen-e{n}", customer=cust, offset=n)
            invoice = Invoice.model_validate(ctx.out("callbill.invoices")[-1])
            await documents.document(ctx, event(invoice, topic="callbill.invoices", offset=10 + n),
                                     Batch(1, "documents"))

    asyncio.run(go())
    docs = {d["interactionId"]: d for d in ctx.out("callbill.documents")}
    assert docs["gen-e1"]["einvoice"]["format"] == "ubl" and "einvoice" not in docs["gen-e2"]
    assert "gen-e3" not in docs
    (review,) = [r for r in ctx.out("callbill.review") if r["interactionId"] == "gen-e3"]
    assert review["reason"] == "EINVOICE_FAILED" and "BT-55" in review["detail"]


def test_a_facturx_customer_gets_a_pdf_a3_with_the_cii_inside(tmp_path, mail_sink):
    from adapters.facturx import conformance, xml_of
    from en16931_check import fatal

    ctx = make_context(tmp_path, smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off", **SELLER_DE)
    add_customer(ctx, einvoice="factur-x")
    doc = asyncio.run(through_delivery(ctx, "gen-fx-1"))
    assert doc.facturx and doc.einvoice is None
    pdf = (tmp_path / "store" / doc.key).read_bytes()
    assert conformance(pdf) == []  # output intent, XMP (pdfaid 3, fx: and its schema), AF /Data, fonts
    xml = xml_of(pdf)
    assert b"<ram:CategoryCode>AE</ram:CategoryCode>" in xml and fatal(xml) == []
    assert "Steuerschuldnerschaft des Leistungsempfängers" in pdf_text(tmp_path / "store" / doc.key)
    (mail,) = mail_sink.messages()
    assert "zugleich eine E-Rechnung (ZUGFeRD/Factur-X, EN 16931)" in mail.get_body(("plain",)).get_content()
