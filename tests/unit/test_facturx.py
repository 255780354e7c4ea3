"""Factur-X / ZUGFeRD: the invoice PDF as PDF/A-3b with its CII XML inside (adapters/facturx.py)."""
from __future__ import annotations

import hashlib
import io

import facturx
import pytest
from lxml import etree

from adapters.einvoice_xml import cii
from adapters.facturx import FacturXError, conformance, embed, xml_of
from adapters.pdf import InvoiceRenderer
from domain.einvoice import from_invoice
from domain.invoice_pdf import Buyer, Seller
from en16931_check import fatal
from test_einvoice import ADDR, CATALOGS, SELLER, buyer_of, issued
from test_domain_billing import customer

RENDERER = InvoiceRenderer()
PDF_SELLER = Seller("Callbill GmbH", ("Hauptstraße 1", "10115 Berlin"), "DE136695976", "billing@callbill.example",
                    country="DE")


@pytest.mark.parametrize("fields", [
    dict(currency="EUR", locale="de-AT", taxId="ATU13585627", name="Alpen Consulting GmbH", postalAddress=ADDR["AT"]),
    dict(currency="JPY", locale="ja", name="山田太郎", postalAddress=ADDR["JP"]),
    dict(currency="EUR", locale="ar", name="فاطمة علي", postalAddress=ADDR["FR"]),
], ids=["reverse charge, German", "JPY, Japanese", "Arabic, right to left"])
def test_a_facturx_pdf_has_every_required_structure_and_its_xml_passes_en16931(fields):
    cust = customer(**fields)
    inv = issued(cust)
    xml = cii(from_invoice(inv, SELLER, buyer_of(cust, inv)))
    loc = CATALOGS.localizer(cust.locale)
    buyer = Buyer(cust.name, (cust.postalAddress.line1,), cust.customerId, cust.postalAddress.country)
    pdf = RENDERER.render(inv, PDF_SELLER, buyer, loc, facturx=xml)
    assert conformance(pdf) == []
    assert xml_of(pdf) == xml and fatal(xml) == []
    # what a receiving system uses: the factur-x package finds the XML and reads its profile
    name, found = facturx.get_facturx_xml_from_pdf(io.BytesIO(pdf))
    assert name == "factur-x.xml" and facturx.get_level(etree.fromstring(found)) == "en16931"
    again = RENDERER.render(inv, PDF_SELLER, buyer, loc, facturx=xml)
    assert hashlib.sha256(pdf).digest() == hashlib.sha256(again).digest()  # deterministic, as every invoice PDF
    assert len(pdf) <= 40_000


def test_the_checks_name_what_a_plain_pdf_lacks_and_a_non_pdfa_base_is_refused():
    cust = customer(currency="EUR", locale="de", postalAddress=ADDR["DE"])
    inv = issued(cust)
    plain = RENDERER.render(inv, PDF_SELLER, Buyer("K", (), "C"), CATALOGS.localizer("de"))
    problems = conformance(plain)
    assert "no embedded factur-x.xml" in problems and "no PDF/A output intent with an ICC profile" in problems
    assert any("pdfaid:part 3" in p for p in problems)
    with pytest.raises(FacturXError, match="not PDF/A"):
        embed(plain, b"<x/>", inv.issuedAt)
