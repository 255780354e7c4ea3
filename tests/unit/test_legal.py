"""The legal content per jurisdiction: VAT numbers, reverse charge, Japan's qualified invoice, labels."""
from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from adapters.catalogs import Catalogs
from adapters.pdf import InvoiceRenderer
from domain.billing import draft, issue
from domain.invoice_pdf import Buyer, Seller
from domain.jurisdictions import TaxIdError, VatIdProblem, check_seller_tax_id, eu_vat_country, vat_treatment
from domain.pricing import PricingError
from runtime.settings import Settings
from test_domain_billing import CARD, customer, interaction

CATALOGS = Catalogs().load()
RENDERER = InvoiceRenderer()
AT_VAT, DE_VAT, JP_REG = "ATU13585627", "DE136695976", "T5835678256246"
SELLER_DE = Seller("Callbill GmbH", ("Hauptstraße 1", "10115 Berlin", "Deutschland"), DE_VAT, "billing@callbill.example",
                   country="DE")
SELLER_JP = Seller("コールビル株式会社", ("東京都千代田区丸の内1-1",), JP_REG, "billing@callbill.example", country="JP")


def text(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text().replace("\x00", "") for p in PdfReader(io.BytesIO(pdf)).pages))


def rt(jurisdiction=True, tax_id=None, seller="DE"):
    return vat_treatment(jurisdiction_reverse_charge=jurisdiction, buyer_tax_id=tax_id, seller_country=seller)


# --- whose VAT number makes reverse charge ------------------------------------------------------

def test_reverse_charge_needs_a_valid_vat_number_of_another_member_state():
    assert eu_vat_country("ATU 1358 5627") == "AT" and eu_vat_country("EL094259216") == "GR"
    at = rt(tax_id=AT_VAT)
    assert at.reverse_charge and at.buyer_vat_id == AT_VAT and at.buyer_vat_country == "AT"
    assert not rt(tax_id=AT_VAT, seller="AT").reverse_charge  # domestic B2B: VAT charged, the number printed
    assert rt(tax_id=AT_VAT, seller="US").reverse_charge  # a seller outside the EU is not established there either
    assert rt(tax_id=None) == rt(tax_id="  ")
    assert not rt(jurisdiction=False, tax_id="12-3456789").reverse_charge  # a US EIN where no reverse charge applies


@pytest.mark.parametrize("bad", ["ATU1358562", "ATU13585628", "DE12345678", "12-3456789", "XX123456789", "B2B"])
def test_an_invalid_vat_number_is_a_review_never_a_zero_rated_invoice(bad):
    with pytest.raises(VatIdProblem) as e:
        rt(tax_id=bad)
    assert e.value.reason == "INVALID_VAT_ID" and bad not in str(e.value)  # the number is not repeated


def test_a_german_b2b_customer_with_an_austrian_vat_number_gets_a_reverse_charge_invoice_in_german():
    c = customer(currency="EUR", locale="de-AT", taxId="ATU 135 856 27", timezone="Europe/Vienna",
                 postalAddress={"line1": "Ring 2", "city": "Wien", "postalCode": "1010", "country": "AT"})
    loc = CATALOGS.localizer(c.locale)
    d = draft(interaction(), c, CARD, None, loc, seller_country="DE")
    inv = issue(d, "INV03-000123", "INV03", datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert inv.reverseCharge and inv.buyerTaxId == AT_VAT and inv.taxTotal == 0 and inv.total == inv.subtotal
    page = text(RENDERER.render(inv, SELLER_DE, Buyer("Alpen Consulting GmbH", ("Ring 2", "1010 Wien"), "CUST-1", "AT"),
                                loc))
    for expected in ("RECHNUNG", "Steuerschuldnerschaft des Leistungsempfängers", f"USt-IdNr.: {DE_VAT}",
                     f"USt-IdNr.: {AT_VAT}", "Leistungsdatum", "Einzelpreis", "USt. 0 % auf", "Artikel 196"):
        assert expected in page.replace("\xa0", " "), expected


def test_the_same_customer_with_a_malformed_number_goes_to_review_and_gets_no_invoice():
    c = customer(currency="EUR", locale="de-AT", taxId="ATU1358562",
                 postalAddress={"line1": "Ring 2", "city": "Wien", "country": "AT"})
    with pytest.raises(PricingError) as e:
        draft(interaction(), c, CARD, None, CATALOGS.localizer("de-AT"), seller_country="DE")
    assert e.value.reason == "INVALID_VAT_ID"


def test_a_valid_number_of_the_sellers_own_state_is_charged_vat_with_both_numbers_printed():
    c = customer(currency="EUR", locale="de", taxId=DE_VAT, postalAddress={"line1": "x", "country": "DE"},
                 timezone="Europe/Berlin")
    loc = CATALOGS.localizer("de")
    inv = issue(draft(interaction(), c, CARD, None, loc, seller_country="DE"), "INV03-000124", "INV03",
                datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert not inv.reverseCharge and inv.taxTotal > 0
    page = text(RENDERER.render(inv, SELLER_DE, Buyer("Kunde GmbH", (), "CUST-1", "DE"), loc))
    assert f"USt-IdNr.: {DE_VAT}" in page and "Steuerschuldnerschaft" not in page and "19 % auf" in page.replace("\xa0", " ")


# --- Japan: the qualified invoice ---------------------------------------------------------------

def test_a_japanese_invoice_has_the_registration_number_and_the_tax_per_rate_with_reduced_items_marked():
    c = customer(currency="JPY", locale="ja-JP", timezone="Asia/Tokyo",
                 postalAddress={"line1": "1-1 Marunouchi", "city": "Chiyoda", "country": "JP"})
    loc = CATALOGS.localizer(c.locale)
    reduced = issue(draft(interaction(serviceType="Printed Newsletter"), c, CARD, None, loc, seller_country="JP"),
                    "INV01-000001", "INV01", datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert [(t.rate, t.category, t.base, t.amount) for t in reduced.taxes] == [(Decimal("0.08"), "reduced", 2200, 176)]
    page = text(RENDERER.render(reduced, SELLER_JP, Buyer("山田太郎", ("東京都",), "CUST-1", "JP"), loc))
    for expected in ("請求書", f"登録番号: {JP_REG}", "※は軽減税率対象品目です", "8%※対象 ￥2,200、消費税 ￥176",
                     "税率ごとの内訳", "￥2,376", "定期購読ニュースレター（印刷版） ※", "消費税 8%（対象額 ￥2,200） ※"):
        assert expected in page, (expected, page)
    assert not re.search(r"￥[\d,]+\.\d", page)  # yen have no decimals
    standard = issue(draft(interaction(), c, CARD, None, loc, seller_country="JP"), "INV01-000002", "INV01",
                     datetime(2026, 12, 2, tzinfo=timezone.utc))
    page = text(RENDERER.render(standard, SELLER_JP, Buyer("山田太郎", (), "CUST-1", "JP"), loc))
    assert "10%対象" in page and "※" not in page


# --- the seller's own number, checked at start-up ------------------------------------------------

@pytest.mark.parametrize("country, number", [
    ("JP", JP_REG), ("DE", DE_VAT), ("AT", AT_VAT), ("GB", "GB 980 7806 84"), ("CH", "CHE-107.787.577 IVA"),
    ("AU", "51 824 753 556"), ("CA", "123026635RT0001"), ("US", "12-3456789")])
def test_a_valid_seller_number_is_accepted(country, number):
    assert Settings(_env_file=None, seller_country=country, seller_tax_id=number).seller_tax_id == number
    check_seller_tax_id(country, number)


@pytest.mark.parametrize("country, number, words", [
    ("JP", "T5835678256247", "registration number"), ("JP", "5835678256246", "registration number"),
    ("DE", AT_VAT, "VAT identification number of DE"), ("DE", "DE136695977", "of DE"),
    ("GB", "GB 980 7806 85", "VAT Reg No."), ("AU", "51 824 753 557", "ABN"), ("CA", "123026635RC0001", "GST/HST")])
def test_a_wrong_seller_number_is_refused_at_start(country, number, words):
    with pytest.raises(ValidationError, match=f"CALLBILL_SELLER_TAX_ID.*{re.escape(words)}"):
        Settings(_env_file=None, seller_country=country, seller_tax_id=number)
    with pytest.raises(TaxIdError):
        check_seller_tax_id(country, number)


@pytest.mark.parametrize("country, lang, label", [
    ("GB", "en", "VAT Reg No."), ("CH", "de", "MWST-Nr."), ("CH", "fr", "No TVA"), ("CH", "it", "N. IVA"),
    ("AU", "en", "ABN"), ("CA", "en", "GST/HST No."), ("CA", "fr", "No de TPS/TVH"), ("JP", "ja", "登録番号"),
    ("FR", "fr", "N° TVA"), ("US", "en", "Tax ID")])
def test_each_country_prints_its_own_registration_label(country, lang, label):
    loc = CATALOGS.localizer(lang)
    seller = Seller("Seller", ("1 Street",), "NUMBER-1", None, country=country)
    inv = issue(draft(interaction(), customer(), CARD, None, loc), "INV03-000001", "INV03",
                datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert f"{label}" in text(RENDERER.render(inv, seller, Buyer("B", (), "C"), loc)).replace("\xa0", " ")
