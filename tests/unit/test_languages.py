"""Every customer-facing text in the customer's language: catalogs, formats, fallback, PDF, email, SMS."""
from __future__ import annotations

import io
import re
import unicodedata
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from babel.messages.pofile import read_po
from pypdf import PdfReader

from adapters.catalogs import LANGUAGES, LOCALES_DIR, CatalogError, Catalogs, read_catalog
from adapters.pdf import InvoiceRenderer
from devtools.catalogs import template
from domain.billing import draft, issue
from domain.invoice_pdf import Buyer, Seller
from domain.pricing import RateCard
from domain.messages import SUBJECT_MAX, MessageData, ack_email, ack_sms, invoice_email, invoice_sms, postal_cover
from domain.redaction import redact
from domain.texts import MESSAGES, placeholders
from pdf_text import lines, segments
from test_domain_billing import customer, interaction

CATALOGS = Catalogs().load()
RENDERER = InvoiceRenderer()
SELLER = Seller("Callbill Demo Services Ltd", ("1 Example Street", "Springfield, IL 62701"), None,
                "billing@callbill.example")

# language -> (customer locale, currency, the invoice's heading, the "Invoice number" label,
#              the amount 1234.56 as the locale writes it, 2026-12-02 in the locale's medium form)
EXPECTED = {
    "en": ("en-US", "USD", "INVOICE", "Invoice number", "$1,234.56", "Dec 2, 2026"),
    "de": ("de-DE", "EUR", "RECHNUNG", "Rechnungsnummer", "1.234,56 €", "02.12.2026"),
    "fr": ("fr-FR", "EUR", "FACTURE", "Numéro de facture", "1 234,56 €", "2 déc. 2026"),
    "es": ("es-ES", "EUR", "FACTURA", "Número de factura", "1.234,56 €", "2 dic 2026"),
    "it": ("it-IT", "EUR", "FATTURA", "Numero fattura", "1.234,56 €", "2 dic 2026"),
    "nl": ("nl-NL", "EUR", "FACTUUR", "Factuurnummer", "€ 1.234,56", "2 dec 2026"),
    "pt": ("pt-PT", "EUR", "FATURA", "Número da fatura", "1 234,56 €", "02/12/2026"),
    "pl": ("pl-PL", "PLN", "FAKTURA", "Numer faktury", "1 234,56 zł", "2 gru 2026"),
    "sv": ("sv-SE", "SEK", "FAKTURA", "Fakturanummer", "1 234,56 kr", "2 dec. 2026"),
    "ja": ("ja-JP", "JPY", "請求書", "請求書番号", "￥1,235", "2026/12/02"),
    # Arabic: the due date's long form (a numeric date's parts are separate RTL runs, see pdf_text.py)
    "ar": ("ar-EG", "EGP", "فاتورة", "رقم الفاتورة", "1,234.56 ج.م.", "30 يناير 2027"),
}


def plain(text: str) -> str:
    """Spaces of every kind (CLDR uses no-break and narrow no-break spaces) as one space; no bidi marks."""
    text = "".join(" " if unicodedata.category(c) == "Zs" else c for c in text if unicodedata.category(c) != "Cf")
    return re.sub(r"\s+", " ", text)


# --- the catalogs ------------------------------------------------------------------------------

def test_the_template_lists_every_message_of_domain_texts():
    with (LOCALES_DIR / "callbill.pot").open("rb") as f:
        pot = read_po(f)
    assert [m.id for m in pot if m.id] == list(MESSAGES), "run python -m devtools.catalogs"
    assert [m.id for m in template() if m.id] == list(MESSAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_catalog_has_every_message_with_its_placeholders(lang):
    found = read_catalog(LOCALES_DIR / f"{lang}.po", complete=True)  # raises naming what is missing
    assert set(found) == set(MESSAGES)
    for msgid, text in found.items():
        assert placeholders(text) == placeholders(msgid), (lang, msgid)
    if lang != "en":  # translated, not copied ("minute", "Description" may be the same word in French)
        same = [m for m, t in found.items() if t == m]
        assert len(same) <= 5, (lang, same)


def test_a_catalog_missing_a_message_or_a_placeholder_is_refused(tmp_path):
    text = (LOCALES_DIR / "de.po").read_text(encoding="utf-8")
    broken = tmp_path / "de.po"
    broken.write_text(text.replace('msgstr "Ihre Rechnung {invoiceNumber}"', 'msgstr "Ihre Rechnung"'), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"placeholder \{invoiceNumber\} is missing"):
        read_catalog(broken, complete=True)
    cut = tmp_path / "fr.po"
    cut.write_text((LOCALES_DIR / "fr.po").read_text(encoding="utf-8").split('msgid "Bill to"')[0], encoding="utf-8")
    with pytest.raises(CatalogError, match="'Bill to': missing"):
        read_catalog(cut, complete=True)


def test_an_operator_overrides_a_message_and_a_bad_override_is_refused_at_start(tmp_path):
    brand = tmp_path / "brand"
    brand.mkdir()
    (brand / "de.po").write_text('msgid "Your invoice {invoiceNumber}"\nmsgstr "Ihre Acme-Rechnung {invoiceNumber}"\n',
                                 encoding="utf-8")
    (brand / "fr_CA.po").write_text('msgid "Bill to"\nmsgstr "Facturer à"\n', encoding="utf-8")
    cats = Catalogs(override_dir=brand).load()
    de = cats.localizer("de-AT")
    assert de.t("Your invoice {invoiceNumber}", invoiceNumber="X") == "Ihre Acme-Rechnung X"
    assert de.t("Bill to") == "Rechnungsempfänger"  # the rest stays the built-in catalog's
    ca = cats.localizer("fr-CA")
    assert (ca.catalog, ca.t("Bill to"), ca.t("INVOICE")) == ("fr_CA", "Facturer à", "FACTURE")
    (brand / "de.po").write_text('msgid "Your invoice {invoiceNumber}"\nmsgstr "Ihre Rechnung für {name}"\n',
                                 encoding="utf-8")
    with pytest.raises(CatalogError, match=r"de.po.*\{invoiceNumber\} is missing.*\{name\} is not one of"):
        Catalogs(override_dir=brand).load()
    (brand / "de.po").write_text('msgid "Your bill"\nmsgstr "Ihre Rechnung"\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="not a callbill message"):
        Catalogs(override_dir=brand).load()


def test_settings_refuse_an_unusable_catalog_dir_and_default_locale(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from runtime.settings import Settings

    with pytest.raises(ValidationError, match="CALLBILL_DEFAULT_LOCALE 'xx-nowhere'"):
        Settings(_env_file=None, default_locale="xx-nowhere")
    assert Settings(_env_file=None, default_locale="de_DE").default_locale == "de-DE"
    with pytest.raises(CatalogError, match="not a directory"):
        Catalogs(override_dir=tmp_path / "missing").load()


# --- which language a customer gets ----------------------------------------------------------

def test_the_fallback_chain_exact_then_language_then_the_sellers_default_then_english():
    ca = CATALOGS.localizer("fr-CA")
    assert (ca.catalog, ca.tag) == ("fr", "fr-CA")  # French texts, Canadian formats
    assert plain(ca.money(Decimal("1234.56"), "CAD")) == "1 234,56 $"
    assert (CATALOGS.localizer("de-AT").catalog, CATALOGS.localizer("ja").catalog) == ("de", "ja")
    assert CATALOGS.localizer("fi-FI").catalog == "en" and CATALOGS.localizer(None).catalog == "en"
    seller_de = Catalogs(default_locale="de-DE").load()
    fi = seller_de.localizer("fi-FI")  # no Finnish catalog: the seller's default, texts and formats together
    assert (fi.catalog, fi.tag, fi.t("INVOICE")) == ("de", "de-DE", "RECHNUNG")
    assert seller_de.localizer("not a locale!").catalog == "de"
    assert seller_de.localizer("fr-CA").catalog == "fr"


def test_an_unknown_locale_is_refused_when_the_customer_is_imported():
    from pydantic import ValidationError

    from schemas.customers import Customer

    with pytest.raises(ValidationError, match="not a locale"):
        Customer.model_validate({"customerId": "C-1", "locale": "xx-Nowhere"})
    assert Customer.model_validate({"customerId": "C-1", "locale": "fr_CA"}).locale == "fr-CA"


@pytest.mark.parametrize("tag, currency, amount, expected", [
    ("de-DE", "EUR", "1234.56", "1.234,56 €"), ("en-IE", "EUR", "1234.56", "€1,234.56"),
    ("ja-JP", "JPY", "17600", "￥17,600"), ("fr-FR", "EUR", "1234.56", "1 234,56 €"),
    ("en-US", "KWD", "46.125", "KWD46.125"), ("de-CH", "CHF", "1234.50", "CHF 1'234.50"),
])
def test_amounts_take_the_currency_symbol_and_the_locales_separators(tag, currency, amount, expected):
    assert plain(CATALOGS.localizer(tag).money(Decimal(amount), currency)) == expected


def test_dates_and_percentages_in_the_locales_forms():
    de, ja = CATALOGS.localizer("de-DE"), CATALOGS.localizer("ja")
    assert (de.date(date(2026, 12, 2)), de.date(date(2026, 12, 2), "long")) == ("02.12.2026", "2. Dezember 2026")
    assert ja.date(date(2026, 12, 2), "long") == "2026年12月2日"
    assert (plain(de.percent(Decimal("0.19"))), ja.percent(Decimal("0.08"))) == ("19 %", "8%")
    assert de.unit_price(Decimal("0.035"), "EUR").startswith("0,035")  # finer than the cent: every digit


# --- the PDF in every language -----------------------------------------------------------------

def localized_invoice(lang: str):
    tag, currency, *_ = EXPECTED[lang]
    loc = CATALOGS.localizer(tag)
    c = customer(currency=currency, locale=tag, timezone="UTC", postalAddress={"line1": "x", "country": "GB"})
    card = RateCard.model_validate({"rates": [{
        "id": "flat", "match": {"wrapupCodes": ["Billable Service"]}, "description": "Consultation", "charge": "flat",
        "prices": {currency: {"unitPrice": "1235" if currency == "JPY" else "1234.56"}}}],
        "taxes": {"GB": {"lines": [{"name": "VAT", "rate": "0.20"}]}}})
    d = draft(interaction(), c, card, None, loc)
    inv = issue(d, "INV03-000123", "INV03", datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc))
    return inv.model_copy(update={"issueDate": date(2026, 12, 2)}), loc


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_invoice_pdf_speaks_the_customers_language(lang):
    inv, loc = localized_invoice(lang)
    tag, _, heading, label, amount, day = EXPECTED[lang]
    pdf = RENDERER.render(inv, SELLER, Buyer("山田太郎" if lang == "ja" else "Customer", ("1 Road",), "CUST-1"), loc)
    if lang == "ar":
        text = plain(" ".join(lines(pdf)))
    else:
        text = plain(" ".join(p.extract_text().replace("\x00", "") for p in PdfReader(io.BytesIO(pdf)).pages))
    for expected in (heading, label, amount, day, loc.t("Date of supply"), loc.t("Unit price"),
                     loc.t("Total due"), loc.t("Page {page} of {total}", page=1, total=1)):
        assert plain(expected) in text, (lang, expected, text[:400])


def test_an_arabic_invoice_reads_right_to_left_with_the_table_mirrored():
    inv, loc = localized_invoice("ar")
    pdf = RENDERER.render(inv, SELLER, Buyer("فاطمة علي", ("الكويت",), "CUST-1"), loc)
    read = lines(pdf)
    # joined letters that extract as the right letters, in reading order, the number inside kept LTR
    assert "فاتورة رقم INV03-000123" in read and "الصفحة 1 من 1" in read, read  # the footer
    assert any("مع ذكر الرقم INV03-000123." in x for x in read), read
    assert any("فاطمة علي" in x for x in read), read
    runs = segments(pdf)
    columns = [loc.t(c) for c in ("Description", "Qty", "Unit", "Unit price", "Amount")]
    heading = {text: x for x, y, text in runs if text in columns}
    assert set(heading) == set(columns), runs
    # mirrored: the first column (the description) starts at the right, the amount is leftmost
    xs = [heading[c] for c in columns]
    assert xs == sorted(xs, reverse=True), list(zip(columns, xs))
    seller = [x for x, y, text in runs if text == "Callbill Demo Services Ltd"]
    assert seller and seller[0] > 595 / 2  # the seller's block, at the start of the line: the right half


# --- email, SMS, acknowledgement, postal cover -------------------------------------------------

def message_data(loc, **over) -> MessageData:
    base = dict(invoiceNumber="INV03-000123", seller="Callbill Demo Services Ltd",
                amount=loc.money(Decimal("1234.56"), "EUR"), dueDate=loc.date(date(2026, 12, 24)),
                url="https://files.example/x.pdf?sig=a", expires=loc.moment(datetime(2026, 12, 9, 9, tzinfo=timezone.utc),
                                                                              "Europe/Berlin"),
                renewUrl="https://billing.example/r?token=abc", contact="billing@x.example", name="Jane Doe")
    return MessageData(**{**base, **over})


@pytest.mark.parametrize("lang", LANGUAGES)
def test_emails_sms_and_letters_in_every_language(lang):
    loc = CATALOGS.localizer(EXPECTED[lang][0])
    data = message_data(loc)
    mail = invoice_email(data, loc, redact)
    expected_subject = loc.t("Your invoice {invoiceNumber}", invoiceNumber="INV03-000123")
    assert mail.subject == re.sub(r"\s+", " ", expected_subject).strip() or "INV03-000123" in mail.subject
    assert "INV03-000123" in mail.subject and "Jane" not in mail.subject and len(mail.subject) <= SUBJECT_MAX
    for text in (mail.text, mail.html):
        assert data.amount.replace("\xa0", "&nbsp;" if False else "\xa0") in text or plain(data.amount) in plain(text)
        assert data.dueDate in text and "Jane Doe" in text
    assert loc.t("Amount due") in mail.text and loc.t("Download your invoice (PDF)") in mail.html
    assert f'lang="{loc.tag}"' in mail.html and (('dir="rtl"' in mail.html) == (lang == "ar"))
    sms = invoice_sms(data, loc, redact)
    assert "INV03-000123" in sms and plain(data.amount) in plain(sms) and "token=abc" in sms
    ack = ack_email("Callbill Demo Services Ltd", loc, redact)
    assert ack.subject and len(ack.subject) <= SUBJECT_MAX
    assert loc.t("We are preparing your invoice") in ack.html
    assert "Callbill Demo Services Ltd" in ack_sms("Callbill Demo Services Ltd", loc, redact)
    cover = postal_cover(data, loc, redact)
    assert "INV03-000123" in cover and data.dueDate in cover
    if lang != "en":
        assert loc.t("Amount due") != "Amount due" and loc.t("Hello,") != "Hello,"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_subjects_stay_generic_and_short_in_every_language(lang):
    """Edge case 4 per catalog: no name, no id, special characters gone, at most 78 characters,
    cut at a word even where 78 characters are fewer words."""
    loc = CATALOGS.localizer(EXPECTED[lang][0])
    long_number = "INV-" + "9" * 60
    hostile = "INV03-1\r\nBcc: victim@example.com <script>"
    for number in ("INV03-000123", long_number, hostile):
        mail = invoice_email(message_data(loc, invoiceNumber=number, name="Jane Doe CUST-9876543"), loc, redact)
        s = mail.subject
        assert len(s) <= SUBJECT_MAX and "\n" not in s and "\r" not in s
        assert "Jane" not in s and "CUST-9876543" not in s and "@" not in s and "<" not in s
        assert re.fullmatch(r"[\w \-.#:/()]+", s), s
    branded = invoice_email(message_data(loc), loc, redact, "Ihre Rechnung $invoiceNumber von $seller " + "Sehr" * 30)
    assert len(branded.subject) <= SUBJECT_MAX and not branded.subject.endswith("Sehr" * 2 + "S")
