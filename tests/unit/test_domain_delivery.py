"""Pure delivery rules: redaction, subjects and bodies, routing by preference."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from domain.delivery import EmailRoute, NoRoute, PostalRoute, SmsRoute, e164, route
from domain.messages import (SMS_MAX, MessageData, TemplateError, ack_email, check_template, clean_subject,
                             invoice_email, invoice_sms, subject, SUBJECT_FIELDS)
from domain.i18n import english
from domain.redaction import Redactor, luhn_ok, redact
from schemas.customers import Customer

# --- redaction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("card 4111 1111 1111 1111 on file", "card 4111 11** **** 1111 on file"),
    ("card 4111-1111-1111-1111.", "card 4111-11**-****-1111."),
    ("4012888888881881", "401288******1881"),
    ("amex 3782 822463 10005", "amex 3782 82**** *0005"),
    ("qty 12 4111111111111111", "qty 12 411111******1111"),
    ("ssn 123-45-6789", "ssn ***-**-****"),
    ("ssn 123 45 6789", "ssn ***-**-****"),
    # the shortest card numbers: 12 digits, the least the quick pre-check lets through
    ("ref 123456789015", "ref ********9015"),
    ("ref 1234 5678 9015", "ref **** **** 9015"),
])
def test_card_numbers_and_ssns_are_masked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "1234 5678 9012 3456",  # 16 digits, not Luhn-valid: left alone
    "1234567890123456",
    "INV03-000123", "INV-000123456789",
    "call +1 312 555 0100", "+44 20 7946 0958", "(312) 555-0100",
    "USD 4111111111111111.00", "total 1,234,567.89", "JPY 150000",
    "order 000-12-3456",  # not an SSN (area 000)
])
def test_other_digit_runs_stay_intact(text):
    assert redact(text) == text


def test_luhn_and_extra_patterns():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    r = Redactor.with_patterns([r"ACCT-\d{8}"])
    assert r("see ACCT-12345678 and 4111111111111111") == "see [redacted] and 411111******1111"
    with pytest.raises(ValueError, match="pattern 1"):
        Redactor.with_patterns(["(unclosed"])


# --- subjects and bodies -----------------------------------------------------------------------


def data(**kw) -> MessageData:
    base = dict(invoiceNumber="INV03-000123", seller="Callbill Demo Services Ltd", amount="USD 150.00",
                dueDate="2026-12-24", url="https://files.example/x.pdf?sig=a&exp=1", expires="2026-11-25 16:15 CST",
                renewUrl="https://billing.example/invoices/INV03-000123/link?token=abc", contact="billing@x.example",
                name="Jane Doe")
    base.update(kw)
    return MessageData(**base)


EN = english()


def test_subject_is_generic_clean_and_short():
    assert subject(EN, "INV03-000123", "Seller", redact) == "Your invoice INV03-000123"
    assert subject(EN, "INV03-000123", "Seller", redact, "Your invoice $invoiceNumber") == "Your invoice INV03-000123"
    hostile = "INV-1\r\nBcc: victim@example.com\n" + "9" * 300 + " 😀 <script>"
    s = subject(EN, hostile, "Seller", redact)
    assert "\n" not in s and "\r" not in s and "<" not in s and "😀" not in s and "@" not in s
    assert len(s) <= 78
    long = subject(EN, "INV-1", "A" * 20 + " " + "B" * 100, redact, "Your invoice $invoiceNumber from $seller")
    assert len(long) <= 78
    card = subject(EN, "4111 1111 1111 1111", "Seller", redact)
    assert "4111 1111 1111 1111" not in card
    # the name is in the template data, but a subject template cannot name it
    with pytest.raises(TemplateError, match=r"\$name"):
        check_template("Invoice for $name", SUBJECT_FIELDS, "subject")
    assert "Jane" not in invoice_email(data(), EN, redact).subject


@pytest.mark.parametrize("raw, masked", [
    ("4111 1111 1111 1111", "4111 11** **** 1111"),
    ("4111-1111-1111-1111", "4111-11**-****-1111"),
    ("123-45-6789", "***-**-****"),
    ("1234 5678 9012 3456", "1234 5678 9012 3456"),  # 16 digits, not Luhn-valid: left alone
])
def test_redaction_runs_over_every_outgoing_text(raw, masked):
    """The same pass over the subject, both email bodies and the SMS, wherever the text came from."""
    subj = subject(EN, "INV-1", f"Acme {raw}", redact, "Your invoice $invoiceNumber from $seller")
    mail = invoice_email(data(seller=f"Acme {raw}", name=f"Jane {raw}"), EN, redact,
                         "Your invoice $invoiceNumber from $seller")
    sms = invoice_sms(data(seller=f"Acme {raw}"), EN, redact)
    for where, text in (("text", mail.text), ("html", mail.html), ("sms", sms)):
        assert masked in text, (where, text)
    for where, text in (("subject", subj), ("mail subject", mail.subject), ("text", mail.text),
                        ("html", mail.html), ("sms", sms)):
        # a subject keeps letters, digits and a few marks: the mask's stars go, the digits stay masked
        assert (raw not in text) if masked != raw else (raw in text), (where, text)
        assert "1111 1111" not in text and "45-6789" not in text, (where, text)


def test_clean_subject_keeps_readable_text():
    assert clean_subject("  Your   invoice\tINV-1 ") == "Your invoice INV-1"
    assert len(clean_subject("word " * 40)) <= 78


def test_bodies_have_link_expiry_and_escaping():
    mail = invoice_email(data(name="<b>Jane</b> 4111 1111 1111 1111"), EN, redact)
    assert "https://files.example/x.pdf?sig=a&exp=1" in mail.text and "2026-11-25 16:15 CST" in mail.text
    assert 'href="https://files.example/x.pdf?sig=a&amp;exp=1"' in mail.html
    assert "&lt;b&gt;Jane&lt;/b&gt;" in mail.html and "<b>Jane" not in mail.html
    assert "4111 11** **** 1111" in mail.text and "4111 1111 1111 1111" not in mail.html
    ack = ack_email("Seller", EN, redact)
    assert ack.subject == "We are preparing your invoice" and "invoice" in ack.text


def test_sms_uses_the_short_renew_link_and_fits():
    text = invoice_sms(data(), EN, redact)
    assert "link?token=abc" in text and "x.pdf" not in text and "Jane" not in text
    assert len(invoice_sms(data(seller="S" * 900), EN, redact)) <= SMS_MAX


def test_local_time_in_the_customers_zone():
    at = datetime(2026, 11, 25, 22, 15, tzinfo=timezone.utc)
    assert EN.moment(at, "Asia/Tokyo") == "Nov 26, 2026, 7:15:00\u202fAM JST"
    assert EN.moment(at, None).endswith("UTC")


# --- routing -----------------------------------------------------------------------------------

ADDR = {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}


def customer(**kw) -> Customer:
    base = dict(customerId="C-1", name="Jane", email="jane@example.com", phone="+13125550100", postalAddress=ADDR)
    base.update(kw)
    return Customer.model_validate(base)


def go(c: Customer, suppressed=None, sms=True, problem=None):
    return route(c, suppressed=lambda a: (suppressed or {}).get(a), sms_enabled=sms,
                 email_problem=lambda a: problem)


def test_routes_by_preference():
    assert go(customer()) == EmailRoute("jane@example.com")
    assert go(customer(preferences={"marketingEmail": False})) == EmailRoute("jane@example.com")
    no_email = {"transactionalEmail": False}
    assert go(customer(preferences=no_email)) == SmsRoute("+13125550100")
    assert isinstance(go(customer(preferences=no_email), sms=False), PostalRoute)
    assert isinstance(go(customer(preferences=no_email, phone=None)), PostalRoute)
    assert isinstance(go(customer(preferences={**no_email, "sms": False})), PostalRoute)
    assert isinstance(go(customer(email=None)), SmsRoute)  # no address: the same fallback
    none = go(customer(preferences={**no_email, "postal": False}, phone=None))
    assert isinstance(none, NoRoute) and none.reason == "NO_DELIVERY_CHANNEL"
    none = go(customer(preferences=no_email, phone=None, postalAddress={"line1": "x"}))
    assert none.reason == "NO_DELIVERY_CHANNEL" and "no complete address" in none.detail


def unchecked(**kw) -> Customer:
    """A record the model would refuse (the directory leaves such records out): the route
    checks again, as the last step before a customer is contacted."""
    return Customer.model_construct(**{**customer().__dict__, **kw})


def test_checks_before_sending():
    bad = go(unchecked(email="jane@@example"))
    assert isinstance(bad, NoRoute) and bad.reason == "PENDING_REVIEW:EMAIL_INVALID" and "jane" not in bad.detail
    supp = go(customer(email="Jane@Example.com"), suppressed={"jane@example.com": "hard 5.1.1"})
    assert supp.reason == "PENDING_REVIEW:EMAIL_SUPPRESSED"
    dns = go(customer(), problem="the domain does not accept email")
    assert dns.reason == "PENDING_REVIEW:EMAIL_UNDELIVERABLE"
    # an invalid phone falls back to postal
    assert isinstance(go(unchecked(preferences=customer().preferences.model_copy(update={"transactionalEmail": False}),
                                   phone="12")), PostalRoute)


def test_e164_uses_the_address_country():
    assert e164("(312) 555-0100", "US") == "+13125550100"
    assert e164("03-1234-5678", "JP") == "+81312345678"
    with pytest.raises(ValueError):
        e164("555", "US")
