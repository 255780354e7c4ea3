"""EN 16931 e-invoices (UBL 2.1 and CII D16B, Factur-X's XML) checked by the standard's own rules, the official XSLT (saxonche).

The validator is shown to work first: the standard's example files pass, and a deliberately
broken invoice fails with the rule named. Then every e-invoice callbill writes passes with no
fatal assert across the issue's matrix: currencies of 0, 2 and 3 decimals, one and several VAT
rates, zero-rated, exempt, reverse charge, not subject to VAT, 200 lines, CJK and Arabic names,
and credit notes (full and partial) referring to their invoice.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.catalogs import Catalogs
from adapters.einvoice_xml import cii, ubl
from domain.billing import draft, issue
from domain.einvoice import CREDIT_NOTE, EInvoiceError, Party, from_invoice
from domain.pricing import RateCard
from en16931_check import HERE, fatal
from schemas.invoices import LineItem, TaxAmount
from test_domain_billing import CARD, customer, interaction

CATALOGS = Catalogs().load()
SELLER = Party("Callbill GmbH", ("Hauptstraße 1",), "DE", "Berlin", "10115", "DE136695976", None,
               "billing@callbill.example")
EXAMPLES = sorted((HERE / "ubl-examples").iterdir()) + sorted((HERE / "cii-examples").iterdir())
D = Decimal


def issued(cust, card=CARD, seller_country="DE", **kw):
    loc = CATALOGS.localizer(cust.locale)
    return issue(draft(interaction(**kw), cust, card, None, loc, seller_country), "INV03-000123", "INV03",
                 datetime(2026, 12, 2, tzinfo=timezone.utc))


def buyer_of(cust, inv) -> Party:
    a = cust.postalAddress
    return Party(cust.name or cust.customerId, (a.line1,), a.country, a.city, a.postalCode, inv.buyerTaxId, None,
                 cust.email)


def xml_for(cust, inv=None, **kw):
    """The e-invoice model, for assert_passes to write in both syntaxes."""
    inv = inv or issued(cust, **kw)
    return from_invoice(inv, SELLER, buyer_of(cust, inv), payment_terms="30 days net")


def assert_passes(doc) -> None:
    """UBL and CII (Factur-X's XML) of the same model, each through its official rules."""
    for write in (ubl, cii):
        xml = write(doc) if not isinstance(doc, bytes) else doc
        broken = fatal(xml)
        assert not broken, (write.__name__, [(f.rule, f.text) for f in broken])
        if isinstance(doc, bytes):
            break


# --- the validator itself -------------------------------------------------------------------

@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_standards_own_examples_pass_the_validator(example: Path):
    assert fatal(example) == []


def test_a_broken_invoice_fails_with_the_rule_named():
    xml = ubl(xml_for(customer(currency="EUR", postalAddress={"line1": "x", "city": "Berlin", "country": "DE"})))
    assert fatal(xml) == []
    wrong_total = xml.replace(b'<cbc:PayableAmount currencyID="EUR">', b'<cbc:PayableAmount currencyID="EUR">9')
    rules = {f.rule for f in fatal(wrong_total)}
    assert "BR-CO-16" in rules, rules  # amount due = total with VAT − paid + rounding
    no_number = xml.replace(b"<cbc:ID>INV03-000123</cbc:ID>", b"")
    assert "BR-02" in {f.rule for f in fatal(no_number)}  # an invoice shall have an invoice number
    cii_xml = cii(xml_for(customer(currency="EUR", postalAddress={"line1": "x", "city": "Berlin", "country": "DE"})))
    assert fatal(cii_xml) == []
    no_country = cii_xml.replace(b"<ram:CountryID>DE</ram:CountryID>", b"")
    assert {"BR-09", "BR-11"} <= {f.rule for f in fatal(no_country)}  # seller's and buyer's country codes


# --- callbill's e-invoices across the matrix --------------------------------------------------

ADDR = {"DE": {"line1": "Hauptstraße 5", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        "AT": {"line1": "Ring 2", "city": "Wien", "postalCode": "1010", "country": "AT"},
        "JP": {"line1": "丸の内1-1", "city": "千代田区", "postalCode": "100-0005", "country": "JP"},
        "KW": {"line1": "شارع الخليج", "city": "الكويت", "country": "KW"},
        "FR": {"line1": "1 rue de Rivoli", "city": "Paris", "postalCode": "75001", "country": "FR"},
        "US": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}}


@pytest.mark.parametrize("name, fields, kw", [
    ("EUR, one rate (19 %)", dict(currency="EUR", locale="de", postalAddress=ADDR["DE"]), {}),
    ("EUR, reverse charge", dict(currency="EUR", locale="de-AT", taxId="ATU13585627", postalAddress=ADDR["AT"]), {}),
    ("EUR, zero-rated export", dict(currency="EUR", locale="fr", postalAddress=ADDR["FR"]), {}),
    ("JPY, reduced 8 %", dict(currency="JPY", locale="ja", name="山田太郎", postalAddress=ADDR["JP"]),
     {"serviceType": "Printed Newsletter"}),
    ("JPY, standard 10 %", dict(currency="JPY", locale="ja", name="山田太郎", postalAddress=ADDR["JP"]), {}),
    ("USD, sales tax", dict(currency="USD", postalAddress=ADDR["US"]), {}),
    ("KWD, zero-rated, Arabic name", dict(currency="KWD", locale="ar", name="فاطمة علي", postalAddress=ADDR["KW"]),
     {"serviceType": "Anything", "durationSeconds": 60}),
])
def test_each_invoice_passes_the_en16931_rules(name, fields, kw):
    cust = customer(**fields)
    if fields["currency"] == "KWD":  # 46.120: a dinar amount EN 16931 can write (at most 2 decimals)
        card = CARD.model_copy(deep=True)
        card.rates[-1].prices["KWD"].unitPrice = D("46.120")
        assert_passes(xml_for(cust, issued(cust, card=card, **kw)))
    else:
        assert_passes(xml_for(cust, **kw))


def test_several_rates_exempt_and_not_subject_to_vat_pass():
    cust = customer(currency="EUR", locale="de", postalAddress=ADDR["DE"])
    inv = issued(cust)
    lines = [*inv.lineItems, LineItem(description="Fachzeitschrift", quantity=2, unit="service",
                                      unitPrice=D("10.00"), amount=D("20.00"), taxCategory="reduced")]
    subtotal = sum((li.amount for li in lines), D(0))
    std = sum((li.amount for li in lines if li.taxCategory == "standard"), D(0))
    taxes = [TaxAmount(name="USt.", jurisdiction="DE", rate=D("0.19"), base=std, amount=(std * D("0.19")).quantize(D("0.01"))),
             TaxAmount(name="USt.", jurisdiction="DE", rate=D("0.07"), base=D("20.00"), amount=D("1.40"),
                       category="reduced")]
    tax = sum((t.amount for t in taxes), D(0))
    two_rates = inv.model_copy(update={"lineItems": lines, "taxes": taxes, "subtotal": subtotal, "taxTotal": tax,
                                       "total": subtotal + tax})
    assert_passes(xml_for(cust, two_rates))
    exempt_card = RateCard.model_validate({"rates": [{"id": "r", "match": {"wrapupCodes": ["Billable Service"]},
                                                      "description": "Medical consultation", "charge": "flat",
                                                      "prices": {"EUR": {"unitPrice": "80.00"}}}],
                                           "taxes": {"DE": {"lines": [{"name": "USt.", "rate": 0, "vatCategory": "E",
                                                                       "exemptionReason": "§ 4 Nr. 14 UStG"}]}}})
    exempt = issued(cust, card=exempt_card)
    assert exempt.taxes[0].vatCategory == "E"
    assert_passes(xml_for(cust, exempt))
    no_tax = issued(customer(currency="USD", postalAddress={**ADDR["US"], "region": "TX"}))
    assert no_tax.taxes == []
    assert_passes(xml_for(customer(currency="USD", postalAddress=ADDR["US"]), no_tax))


def test_a_200_line_invoice_passes():
    cust = customer(currency="EUR", locale="de", postalAddress=ADDR["DE"])
    inv = issued(cust)
    lines = [LineItem(description=f"Gesprächsabschnitt {k}", quantity=1, unit="minute", unitPrice=D("1.15"),
                      amount=D("1.15")) for k in range(200)]
    subtotal = D("230.00")
    tax = TaxAmount(name="USt.", jurisdiction="DE", rate=D("0.19"), base=subtotal, amount=D("43.70"))
    doc = xml_for(cust, inv.model_copy(update={"lineItems": lines, "taxes": [tax], "subtotal": subtotal,
                                               "taxTotal": tax.amount, "total": subtotal + tax.amount}))
    assert ubl(doc).count(b"<cac:InvoiceLine>") == 200
    assert_passes(doc)


def test_full_and_partial_credit_notes_refer_to_their_invoice_and_pass():
    cust = customer(currency="EUR", locale="de-AT", taxId="ATU13585627", postalAddress=ADDR["AT"])
    inv = issued(cust)
    full = from_invoice(inv.model_copy(update={"invoiceNumber": "CN03-000001"}), SELLER, buyer_of(cust, inv),
                        type_code=CREDIT_NOTE, preceding=(inv.invoiceNumber, inv.issueDate))
    xml = ubl(full)
    assert b"<CreditNote" in xml and b"<cbc:CreditNoteTypeCode>381<" in xml and b"INV03-000123" in xml
    assert b"<ram:TypeCode>381</ram:TypeCode>" in cii(full) and b"<ram:IssuerAssignedID>INV03-000123<" in cii(full)
    assert_passes(full)
    std = issued(customer(currency="EUR", locale="de", postalAddress=ADDR["DE"]))
    line = std.lineItems[0].model_copy(update={"quantity": 1, "amount": std.lineItems[0].unitPrice})
    tax = std.taxes[0].model_copy(update={"base": line.amount, "amount": (line.amount * std.taxes[0].rate).quantize(D("0.01"))})
    partial = std.model_copy(update={"invoiceNumber": "CN03-000002", "lineItems": [line], "taxes": [tax],
                                     "subtotal": line.amount, "taxTotal": tax.amount, "total": line.amount + tax.amount})
    assert_passes(from_invoice(partial, SELLER, buyer_of(cust, std), type_code=CREDIT_NOTE,
                               preceding=(std.invoiceNumber, std.issueDate)))


def test_what_en16931_cannot_say_is_refused_with_a_reason():
    cust = customer(currency="KWD", postalAddress=ADDR["KW"])
    with pytest.raises(EInvoiceError, match="3 decimals"):
        from_invoice(issued(cust, serviceType="Anything"), SELLER, buyer_of(cust, issued(cust)))  # 46.125 KWD
    us = customer(currency="USD", postalAddress=ADDR["US"])
    inv = issued(us)
    stacked = inv.model_copy(update={"taxes": [*inv.taxes, inv.taxes[0].model_copy(update={"name": "County tax"})]})
    with pytest.raises(EInvoiceError, match="one VAT rate per line"):
        from_invoice(stacked, SELLER, buyer_of(us, inv))
    anonymous = Party("Seller", ("1 Street",), "US")
    with pytest.raises(EInvoiceError, match="BR-CO-26"):
        from_invoice(inv, anonymous, buyer_of(us, inv))
    at = customer(currency="EUR", taxId="ATU13585627", postalAddress=ADDR["AT"])
    reverse = issued(at, seller_country="US")  # a US seller: reverse charge, but no EU VAT number of its own
    with pytest.raises(EInvoiceError, match="BR-AE-02"):
        from_invoice(reverse, Party("US Seller", ("1 St",), "US", tax_registration="12-3456789"), buyer_of(at, reverse))


def test_a_seller_without_a_vat_number_is_identified_by_its_tax_registration():
    from domain.einvoice import seller_party

    us_seller = seller_party("Callbill Demo Services Ltd", ("1 Example Street", "Springfield, IL 62701"), "US",
                             "12-3456789", "billing@callbill.example")
    assert (us_seller.vat_id, us_seller.tax_registration) == (None, "12-3456789")
    cust = customer(currency="JPY", locale="ja", name="山田太郎", postalAddress=ADDR["JP"])
    inv = issued(cust, seller_country="US")
    doc = from_invoice(inv, us_seller, buyer_of(cust, inv))
    assert b"<cbc:CompanyID>12-3456789</cbc:CompanyID>" in ubl(doc)
    assert_passes(doc)
