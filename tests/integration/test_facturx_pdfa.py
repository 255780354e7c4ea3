"""Factur-X PDFs through veraPDF, the PDF Association's PDF/A validator (from Maven Central).

tests/unit/test_facturx.py checks the structures one by one (pikepdf); this is the full
PDF/A-3B profile, the way a receiving system or an archive checks the file.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from adapters.catalogs import Catalogs
from adapters.einvoice_xml import cii
from adapters.pdf import InvoiceRenderer
from domain.billing import draft, issue
from domain.einvoice import buyer_party, from_invoice, seller_party
from domain.invoice_pdf import Buyer, Seller
from domain.pricing import load_rate_card
from schemas.customers import Customer
from schemas.events import InteractionCompleted
from verapdf_check import validate

CARD = load_rate_card(Path(__file__).resolve().parents[2] / "samples" / "rate-card.yaml")
CATALOGS = Catalogs().load()
PDF_SELLER = Seller("Callbill GmbH", ("Hauptstraße 1", "10115 Berlin"), "DE136695976", "billing@callbill.example",
                    country="DE")
SELLER = seller_party(PDF_SELLER.name, PDF_SELLER.address, "DE", PDF_SELLER.tax_id, PDF_SELLER.contact)
ADDR = {"AT": {"line1": "Ring 2", "city": "Wien", "postalCode": "1010", "country": "AT"},
        "JP": {"line1": "丸の内1-1", "city": "千代田区", "postalCode": "100-0005", "country": "JP"},
        "FR": {"line1": "1 rue de Rivoli", "city": "Paris", "postalCode": "75001", "country": "FR"},
        "US": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "country": "US"}}


def customer(**fields) -> Customer:
    return Customer.model_validate({"customerId": "CUST-1", "email": "billing@buyer.example", "timezone": "UTC",
                                    "postalAddress": ADDR["US"], "currency": "USD", **fields})


def issued(cust: Customer):
    ended = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    inter = InteractionCompleted(interactionId="gen-1", source="webhook", customerId=cust.customerId, endedAt=ended,
                                 durationSeconds=754, serviceType="Consultation Service - Level 2",
                                 wrapupCode="Billable Service")
    return issue(draft(inter, cust, CARD, None, CATALOGS.localizer(cust.locale), "DE"), "INV03-000123", "INV03", ended)


def buyer_of(cust: Customer, inv):
    return buyer_party(cust, inv)


def test_facturx_invoices_in_three_scripts_are_pdf_a3b_compliant(tmp_path):
    renderer, paths = InvoiceRenderer(), []
    for name, fields in {
        "de": dict(currency="EUR", locale="de-AT", taxId="ATU13585627", name="Alpen Consulting GmbH",
                   postalAddress=ADDR["AT"]),
        "ja": dict(currency="JPY", locale="ja", name="山田太郎", postalAddress=ADDR["JP"]),
        "ar": dict(currency="EUR", locale="ar", name="فاطمة علي", postalAddress=ADDR["FR"]),
    }.items():
        cust = customer(**fields)
        inv = issued(cust)
        pdf = renderer.render(inv, PDF_SELLER, Buyer(cust.name, (cust.postalAddress.line1,), cust.customerId,
                                                     cust.postalAddress.country),
                              CATALOGS.localizer(cust.locale), facturx=cii(from_invoice(inv, SELLER, buyer_of(cust, inv))))
        path = tmp_path / f"facturx-{name}.pdf"
        path.write_bytes(pdf)
        paths.append(path)
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(renderer.render(issued(customer()), PDF_SELLER, Buyer("B", (), "C")))
    verdicts = validate([*paths, plain])
    for path in paths:
        assert verdicts[path].compliant, (path.name, verdicts[path].failures)
    # the validator is not a rubber stamp: an ordinary (not PDF/A) invoice PDF fails, with the rules named
    assert not verdicts[plain].compliant and any(f.startswith("6.") for f in verdicts[plain].failures)
