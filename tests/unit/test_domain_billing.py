"""Pricing, money, taxes, invoice dates and numbering: pure rules, no broker."""
from __future__ import annotations

import json
import random
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.backoff import full_jitter, next_delay
from domain.billing import delivery_channel, draft, erp_request, issue
from domain.dates import DateError, invoice_dates
from domain.money import MoneyError, minor_unit, parse_amount, round_money
from domain.numbering import counter_key, invoice_number, seq_of, series
from domain.pricing import PricingError, RateCardError, load_rate_card, price
from schemas.customers import Customer
from schemas.events import InteractionCompleted
from schemas.invoices import erp_json

REPO = Path(__file__).resolve().parents[2]
CARD = load_rate_card(REPO / "samples" / "rate-card.yaml")
D = Decimal


def p(seconds: int, currency: str = "USD", country: str = "US", region: str | None = "IL",
      service: str = "Consultation Service - Level 2", reverse: bool = False, card=CARD):
    return price(card, wrapup_code="Billable Service", service_type=service, duration_seconds=seconds,
                 currency=currency, country=country, region=region, reverse_charge=reverse)


# --- money ---------------------------------------------------------------------------

def test_minor_units_follow_iso_4217():
    assert (minor_unit("JPY"), minor_unit("USD"), minor_unit("KWD"), minor_unit("eur")) == (0, 2, 3, 2)
    with pytest.raises(MoneyError, match="XYZ"):
        minor_unit("XYZ")


def test_rounding_is_half_up_to_the_minor_unit():
    assert round_money(D("2.005"), "USD") == D("2.01")
    assert round_money(D("2.0049"), "USD") == D("2.00")
    assert round_money(D("0.0625"), "KWD") == D("0.063")
    assert round_money(D("1500.5"), "JPY") == D("1501")
    assert round_money(D("-2.005"), "USD") == D("-2.01")  # away from zero at the half


def test_floats_are_refused_as_amounts():
    with pytest.raises(MoneyError, match="float"):
        parse_amount(0.1)
    assert parse_amount("0.10") == D("0.10")


# --- pricing -------------------------------------------------------------------------

def test_per_started_minute_with_state_tax():
    r = p(754)  # 12 min 34 s -> 13 started minutes
    assert [(li.quantity, li.unitPrice, li.amount) for li in r.lineItems] == [(13, D("2.50"), D("32.50"))]
    assert r.subtotal == D("32.50")
    assert [(t.name, t.rate, t.amount) for t in r.taxes] == [("Illinois sales tax", D("0.0625"), D("2.03"))]
    assert r.total == D("34.53") and r.priority == "HIGH"


def test_exact_minute_boundaries():
    assert p(60).lineItems[0].quantity == 1
    assert p(61).lineItems[0].quantity == 2
    assert p(7200).lineItems[0].quantity == 120


def test_minimum_charge_tops_up():
    r = p(30)  # one minute = 2.50, minimum 10.00
    assert [li.description for li in r.lineItems] == ["Consultation Service - Level 2", "Minimum charge adjustment"]
    assert r.subtotal == D("10.00")
    zero = p(0)  # a zero-length call still costs the minimum
    assert zero.subtotal == D("10.00") and len(zero.lineItems) == 1


def test_graduated_tiers_one_line_per_tier():
    r = p(754, currency="EUR", country="FR", region=None)
    assert [(li.quantity, li.unitPrice, li.amount) for li in r.lineItems] == [
        (10, D("2.40"), D("24.00")), (3, D("1.90"), D("5.70"))]
    assert r.subtotal == D("29.70")


def test_zero_decimal_currency():
    r = p(754, currency="JPY", country="JP", region="Tokyo")
    assert r.lineItems[0].amount == D("4550")
    assert r.taxes[0].amount == D("455") and r.total == D("5005")
    assert str(r.total) == "5005"  # no ".00" on a yen amount


def test_three_decimal_currency_and_per_second_increments():
    r = p(754, currency="KWD", country="KW", region=None, service="Technical Support")
    li = r.lineItems[0]
    assert (li.quantity, li.unit) == (756, "second")  # 754 s in started 6 s increments
    assert li.amount == D("9.072") and r.total == D("9.072")
    assert r.taxes[0].amount == D("0.000") and "Zero-rated supply." in r.notes


def test_flat_fee_fallback_rule_and_first_match_wins():
    r = p(754, service="Anything else")
    assert r.rateId == "billable-flat" and r.subtotal == D("150.00")


def test_reverse_charge_zero_rates_where_the_jurisdiction_allows_it():
    """Who qualifies (a valid VAT number of another member state) is tests/unit/test_legal.py's."""
    b2b = p(754, currency="EUR", country="DE", region=None, reverse=True)
    assert b2b.taxes[0].rate == 0 and b2b.taxes[0].amount == D("0.00") and b2b.total == b2b.subtotal
    assert b2b.reverseCharge and any("Article 196" in n for n in b2b.notes)
    assert not p(754, currency="GBP", country="GB", region=None, reverse=True).reverseCharge  # GB: no reverse charge
    b2c = p(754, currency="EUR", country="DE", region=None)
    assert b2c.taxes[0].amount == D("5.64")  # 29.70 * 0.19 = 5.643


def test_jurisdiction_falls_back_from_region_to_country_to_star():
    assert p(60, country="US", region="TX").taxes == []
    assert p(60, currency="GBP", country="GB", region="ENG").taxes[0].rate == D("0.20")
    assert p(60, currency="EUR", country="FR", region=None).taxes[0].jurisdiction == "*"


def test_pricing_errors_name_a_review_reason():
    with pytest.raises(PricingError) as e:
        p(60, currency="CHF")
    assert e.value.reason == "NO_PRICE_FOR_CURRENCY"
    with pytest.raises(PricingError) as e:
        p(60, currency="ZZZ")
    assert e.value.reason == "INVALID_CURRENCY"
    with pytest.raises(PricingError) as e:
        p(60, currency=None)
    assert e.value.reason == "NO_CURRENCY"
    with pytest.raises(PricingError) as e:
        price(CARD, wrapup_code="Information Only", service_type=None, duration_seconds=1, currency="USD",
              country="US", region=None)
    assert e.value.reason == "NO_RATE"


def test_missing_jurisdiction_without_star_goes_to_review(tmp_path):
    f = tmp_path / "card.json"
    f.write_text(json.dumps({"rates": [{"id": "a", "match": {"wrapupCodes": ["Billable Service"]}, "description": "A",
                                        "charge": "flat", "prices": {"USD": {"unitPrice": "1.00"}}}],
                             "taxes": {"US": {"lines": []}}}))
    card = load_rate_card(f)
    with pytest.raises(PricingError) as e:
        p(1, country="CA", region=None, card=card)
    assert e.value.reason == "NO_TAX_JURISDICTION"


@pytest.mark.parametrize("card, message", [
    ({"rates": []}, "rates"),
    ({"rates": [{"id": "a", "match": {}, "description": "A", "charge": "flat", "prices": {"USD": {"unitPrice": "1"}}}]},
     "match needs wrapupCodes or serviceTypes"),
    ({"rates": [{"id": "a", "match": {"wrapupCodes": ["x"]}, "description": "A", "charge": "flat",
                 "prices": {"USD": {"unitPrice": "1", "minimum": "1.001"}}}]}, "more decimals than USD"),
    ({"rates": [{"id": "a", "match": {"wrapupCodes": ["x"]}, "description": "A", "charge": "flat",
                 "prices": {"JPY": {"unitPrice": "100", "minimum": "0.5"}}}]}, "more decimals than JPY"),
    ({"rates": [{"id": "a", "match": {"wrapupCodes": ["x"]}, "description": "A", "charge": "flat",
                 "prices": {"XXY": {"unitPrice": "1"}}}]}, "unknown currency code"),
    ({"rates": [{"id": "a", "match": {"wrapupCodes": ["x"]}, "description": "A", "charge": "hourly",
                 "prices": {"USD": {"unitPrice": "1"}}}]}, "rates.0.charge"),
    ({"rates": [{"id": "a", "match": {"wrapupCodes": ["x"]}, "description": "A", "charge": "flat",
                 "prices": {"USD": {"tiers": [{"upTo": 10, "unitPrice": "1"}, {"upTo": 5, "unitPrice": "1"}]}}}]},
     "tier"),
    ({"rates": [{"id": "a", "match": {"wrapupCodes": ["x"]}, "description": "A", "charge": "flat",
                 "prices": {"USD": {"unitPrice": "1"}}, "colour": "red"}]}, "colour"),
    ({"rates": [{"id": "a", "match": {"wrapupCodes": ["x"]}, "description": "A", "charge": "flat",
                 "prices": {"USD": {"unitPrice": "1"}}}] * 2}, "rate ids repeat: a"),
])
def test_rate_card_mistakes_are_named_at_load(tmp_path, card, message):
    f = tmp_path / "card.json"
    f.write_text(json.dumps(card))
    with pytest.raises(RateCardError, match=message):
        load_rate_card(f)


def test_rate_card_file_problems(tmp_path):
    with pytest.raises(RateCardError, match="cannot read"):
        load_rate_card(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rates: [unclosed")
    with pytest.raises(RateCardError, match="not valid YAML"):
        load_rate_card(bad)


def test_yaml_amounts_are_exact_decimals():
    # 2.50 in the YAML file is Decimal("2.50"), never the float 2.5
    assert CARD.rates[0].prices["USD"].unitPrice == D("2.50")
    assert str(CARD.rates[0].prices["KWD"].minimum) == "3.000"


@given(seconds=st.integers(0, 10 * 3600), cur=st.sampled_from(["USD", "EUR", "JPY", "KWD"]),
       service=st.sampled_from(["Consultation Service - Level 2", "Technical Support", "other"]))
def test_invoices_always_add_up(seconds, cur, service):
    country = {"USD": "US", "EUR": "DE", "JPY": "JP", "KWD": "KW"}[cur]
    r = p(seconds, currency=cur, country=country, region="IL" if cur == "USD" else None, service=service)
    assert r.subtotal == sum(li.amount for li in r.lineItems)
    assert r.total == r.subtotal + sum(t.amount for t in r.taxes)
    for amount in [r.subtotal, r.total, *(li.amount for li in r.lineItems), *(t.amount for t in r.taxes)]:
        assert amount == round_money(amount, cur) and amount >= 0


# --- dates -----------------------------------------------------------------------------

def utc(*a) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def test_tokyo_new_year():
    d = invoice_dates(utc(2026, 12, 31, 23, 30), "Asia/Tokyo", None, 30)
    assert (d.serviceDate, d.issueDate, d.dueDate) == (date(2027, 1, 1), date(2027, 1, 1), date(2027, 1, 31))
    assert d.serviceAtLocal.isoformat() == "2027-01-01T08:30:00+09:00"


def test_west_of_utc_is_still_the_old_year():
    d = invoice_dates(utc(2027, 1, 1, 3, 0), "America/Chicago", None, 14)
    assert d.serviceDate == date(2026, 12, 31) and d.dueDate == date(2027, 1, 14)


def test_dst_changes():
    # US spring forward 2026-03-08 (CST -6 -> CDT -5); 05:30 UTC is 23:30 CST the day before
    assert invoice_dates(utc(2026, 3, 8, 5, 30), "America/Chicago", None, 0).serviceDate == date(2026, 3, 7)
    # after the change the local day starts at 05:00 UTC
    assert invoice_dates(utc(2026, 3, 9, 4, 30), "America/Chicago", None, 0).serviceDate == date(2026, 3, 8)
    assert invoice_dates(utc(2026, 3, 9, 5, 30), "America/Chicago", None, 0).serviceDate == date(2026, 3, 9)
    # EU fall back 2026-10-25: 22:30 UTC the 24th is 00:30 CEST the 25th
    d = invoice_dates(utc(2026, 10, 24, 22, 30), "Europe/Berlin", None, 0)
    assert d.serviceDate == date(2026, 10, 25) and d.serviceAtLocal.utcoffset().total_seconds() == 7200
    d = invoice_dates(utc(2026, 10, 25, 22, 30), "Europe/Berlin", None, 0)
    assert d.serviceDate == date(2026, 10, 25) and d.serviceAtLocal.utcoffset().total_seconds() == 3600


def test_half_hour_and_date_line_zones():
    assert invoice_dates(utc(2026, 6, 30, 18, 45), "Asia/Kolkata", None, 0).serviceDate == date(2026, 7, 1)
    assert invoice_dates(utc(2026, 6, 30, 10, 30), "Pacific/Kiritimati", None, 0).serviceDate == date(2026, 7, 1)
    assert invoice_dates(utc(2026, 7, 1, 10, 30), "Pacific/Pago_Pago", None, 0).serviceDate == date(2026, 6, 30)


def test_no_timezone_uses_the_default_or_goes_to_review():
    d = invoice_dates(utc(2026, 12, 31, 23, 30), None, "Asia/Tokyo", 0)
    assert d.serviceDate == date(2027, 1, 1) and d.timezoneSource == "default"
    with pytest.raises(DateError) as e:
        invoice_dates(utc(2026, 12, 31, 23, 30), None, None, 0)
    assert e.value.reason == "NO_TIMEZONE"


@pytest.mark.parametrize("bad", ["Mars/Olympus", "UTC+9", "../etc/passwd", "/etc/localtime", " Asia/Tokyo"])
def test_invalid_timezone_goes_to_review_even_with_a_default(bad):
    with pytest.raises(DateError) as e:
        invoice_dates(utc(2026, 1, 1), bad, "UTC", 0)
    assert e.value.reason == "INVALID_TIMEZONE" and bad.strip() not in str(e.value)


# --- numbering, backoff, request -------------------------------------------------------------

def test_series_and_numbers():
    assert series("INV", 3, 8) == "INV03"
    assert series("INV", 3, 120) == "INV003"
    n = invoice_number("INV03", 123)
    assert n == "INV03-000123" and seq_of(n, "INV03") == 123 and seq_of(n, "INV04") is None
    assert counter_key("INV03").startswith("#")


def test_backoff_full_jitter_is_capped_and_honours_retry_after():
    rnd = random.Random(1)
    delays = [full_jitter(a, 0.2, 5.0, rnd) for a in range(20)]
    assert all(0 <= x <= 5.0 for x in delays)
    assert max(delays[10:]) > 1.0  # it grows towards the cap
    assert next_delay(0, 0.2, 5.0, retry_after=7.0, rand=rnd) == 7.0


def customer(**kw) -> Customer:
    base = dict(customerId="CUST-1", name="Jane Doe", email="jane@example.com", phone="+12175550123",
                postalAddress={"line1": "1 Main St", "city": "Springfield", "region": "IL", "country": "US"},
                timezone="America/Chicago", currency="USD")
    return Customer.model_validate({**base, **kw})


def interaction(**kw) -> InteractionCompleted:
    base = dict(interactionId="gen-1", source="webhook", customerId="CUST-1", endedAt=utc(2026, 12, 31, 23, 30),
                durationSeconds=754, serviceType="Consultation Service - Level 2", wrapupCode="Billable Service")
    return InteractionCompleted.model_validate({**base, **kw})


def test_delivery_channel_follows_preferences():
    assert delivery_channel(customer()) == "EMAIL"
    assert delivery_channel(customer(preferences={"transactionalEmail": False})) == "SMS"
    assert delivery_channel(customer(preferences={"transactionalEmail": False}, phone=None)) == "POSTAL"
    assert delivery_channel(customer(preferences={"marketingEmail": False})) == "EMAIL"
    assert delivery_channel(customer(email=None, phone=None, postalAddress=None)) == "NONE"


def test_erp_request_has_the_guides_shape_with_exact_numbers():
    d = draft(interaction(), customer(), CARD, None)
    body = json.loads(erp_json(erp_request(d)), parse_float=Decimal)
    assert body["sourceInteractionId"] == "gen-1" and body["customerReference"] == "CUST-1"
    assert body["requestedAmount"] == D("34.53") and body["currency"] == "USD"
    assert body["lineItems"] == [{"description": "Consultation Service - Level 2", "quantity": 13, "unitPrice": D("2.50")}]
    assert body["deliveryChannel"] == "EMAIL" and body["priority"] == "HIGH"
    assert body["issueDate"] == "2026-12-31" and body["timezone"] == "America/Chicago"  # local, not UTC's Jan 1
    assert b'"requestedAmount":34.53' in erp_json(erp_request(d))


def test_customer_payment_terms_override_the_card():
    d = draft(interaction(), customer(paymentTermsDays=7), CARD, None)
    assert d.dates.dueDate == date(2027, 1, 7)


def test_issue_takes_the_erps_number_and_amounts():
    from schemas.invoices import ErpInvoiceResponse

    d = draft(interaction(), customer(), CARD, None)
    now = utc(2027, 1, 1)
    local = issue(d, "INV03-000001", "INV03", now)
    assert local.total == D("34.53") and local.issuer == "callbill" and not local.notes
    erp = issue(d, "ERP-9", "ERP", now, ErpInvoiceResponse(invoiceNumber="ERP-9", total=D("35.00")))
    assert erp.invoiceNumber == "ERP-9" and erp.total == D("35.00") and erp.issuer == "erp"
    assert erp.notes == ["Amounts as issued by the billing system."]
