"""Every text callbill puts in front of a customer, as gettext message ids (English).

One list, so the catalogs (adapters/locales/*.po) can be checked against it: a catalog
that misses a message or changes a placeholder fails the tests, and an operator's
override catalog is refused at start-up. The value is the note translators read
(gettext's "#." comment). Placeholders are `{name}` (python-brace-format); the code
fills them after translation, so a translation may move them but not rename them.
`devtools/catalogs.py` writes callbill.pot from this list and merges it into the .po files.
"""
from __future__ import annotations

import re

MESSAGES: dict[str, str] = {
    # --- the invoice PDF -------------------------------------------------------------
    "INVOICE": "The document's heading, top right, in capitals where the script has them.",
    "Invoice {number}": "The PDF's title and footer; {number} is like INV03-000123.",
    "Bill to": "Heading above the customer's name and address.",
    "Page {page} of {total}": "Footer of every page.",
    "Description": "Column heading of the invoice lines.",
    "Qty": "Column heading: quantity (abbreviated).",
    "Unit": "Column heading: the unit of the quantity (minute, second ...).",
    "Unit price": "Column heading: the price of one unit, without VAT.",
    "Amount": "Column heading: the line's amount, without VAT.",
    "Invoice number": "Label in the invoice's details.",
    "Issue date": "Label: the date the invoice was issued.",
    "Date of supply": "Label: the date the service was provided (VAT law: date of supply).",
    "Due date": "Label: the date payment is due.",
    "Customer number": "Label: the customer's account number with the seller.",
    "Reference": "Label: the contact center's interaction id this invoice is for.",
    "Time zone": "Label: the time zone the invoice's dates are in, like Europe/Berlin.",
    "Subtotal": "Sum of the lines before tax.",
    "{tax} {rate} on {base}": "A tax line: {tax} is the tax's name (VAT), {rate} like 19 %, {base} the taxed amount.",
    "Total due": "The amount the customer pays, tax included.",
    "Payment terms: {days} days. Please pay {amount} by {date}, quoting {number}.":
        "Paragraph under the totals; {date} is the due date.",
    "Amounts as issued by the billing system.": "A note when the billing system's amounts differ from callbill's.",
    "Reverse charge": "The legal wording for reverse-charge invoices (EU VAT Directive art. 226(11a)); "
                      "use the wording your country's VAT law or the Directive's translation uses.",
    "VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC).":
        "Explains reverse charge under the totals.",
    "Items marked {mark} are taxed at the reduced rate.": "Japan: the mark (※) against reduced-rate items.",
    "Tax per rate": "Japan: heading of the tax summary per tax rate.",
    "{rate} taxable {base}, tax {tax}": "Japan: one line of the per-rate summary.",
    "VAT No.": "Label before a VAT identification number (EU).",
    "Tax ID": "Label before a tax identification number where the country has no more specific term.",
    "Registration No.": "Label before a Japanese qualified invoice issuer's registration number (T + 13 digits).",
    "minute": "Unit of a billed quantity (a started minute of a call).",
    "second": "Unit of a billed quantity.",
    "service": "Unit of a flat-priced service.",
    "adjustment": "Unit of the minimum charge adjustment line.",
    "Minimum charge adjustment": "An invoice line that brings the amount up to the rate's minimum.",
    "{description} (minutes {first}–{last})": "A tiered price's line: the minutes billed at this tier.",
    "{description} (seconds {first}–{last})": "A tiered price's line: the seconds billed at this tier.",
    # --- the credit note PDF ---------------------------------------------------------
    "CREDIT NOTE": "A credit note's heading (it corrects an invoice), top right, in capitals where the script has them.",
    "Credit note {number}": "The credit note PDF's title and footer; {number} is like CN03-000012.",
    "Credit note number": "Label in the credit note's details.",
    "Corrected invoice": "Label: the number and date of the invoice this credit note corrects.",
    "Total credited": "The amount credited to the customer, tax included.",
    "This credit note corrects invoice {number} of {date}. {amount} is credited to your account.":
        "Paragraph under a credit note's totals; {date} is the invoice's issue date.",
    "Reason": "Label before the reason the seller gives for the credit note (their own words follow).",
    # --- email -----------------------------------------------------------------------
    "Your invoice {invoiceNumber}": "Email subject. Generic on purpose: no name, at most 78 characters.",
    "Hello {name},": "Email greeting with the customer's name; formal address where the language has it.",
    "Hello,": "Email greeting when the name is unknown; formal.",
    "Your invoice {invoiceNumber} from {seller} is ready.": "First line of the invoice email.",
    "Amount due": "Label in the invoice email.",
    "Download it here (the link is valid until {expires}):": "Plain-text email, before the link; {expires} is a date and time.",
    "If the link has expired, this one always gives you a fresh link:": "Plain-text email, before the renew link.",
    "Download your invoice (PDF)": "HTML email: the link's text.",
    "The link is valid until {expires}.": "HTML email, under the link.",
    "Get a fresh link": "HTML email: the renew link's text, for when the first link has expired.",
    "Questions about this invoice? Contact {contact}.": "Last line; {contact} is an email address or phone number.",
    "The e-invoice (XML, EN 16931) for your accounting system:": "Plain-text email, before the link to the structured e-invoice file.",
    "Download the e-invoice (XML)": "HTML email: the link's text for the structured e-invoice file.",
    "The PDF is also an e-invoice (Factur-X, EN 16931): your accounting system can read its embedded XML.":
        "Email, for customers whose PDF carries the structured invoice inside (Factur-X / ZUGFeRD).",
    "Your credit note {invoiceNumber}": "Credit note email subject. Generic on purpose: no name, at most 78 characters.",
    "Your credit note {invoiceNumber} from {seller} is ready. It corrects invoice {correcting}.":
        "First line of the credit note email; {correcting} is the corrected invoice's number.",
    "Amount credited": "Label in the credit note email.",
    "Download your credit note (PDF)": "HTML email: the link's text.",
    "Questions about this credit note? Contact {contact}.": "Last line; {contact} is an email address or phone number.",
    # --- SMS -------------------------------------------------------------------------
    "{seller}: your invoice {invoiceNumber} for {amount} is ready: {url}": "The invoice SMS; keep it short.",
    "{seller}: your credit note {invoiceNumber} for {amount} is ready: {url}": "The credit note SMS; keep it short.",
    # --- acknowledgement ("Processing Received") -------------------------------------
    "We are preparing your invoice": "Subject of the acknowledgement email (sent when an invoice is late).",
    "Thank you for contacting {seller}. We have received your request and are preparing your invoice; it will follow in a separate message shortly.":
        "Body of the acknowledgement.",
    "{seller}: we have received your request. Your invoice will follow shortly.": "The acknowledgement SMS.",
    # --- postal ----------------------------------------------------------------------
    "Please find enclosed invoice {invoiceNumber} from {seller}. Amount due: {amount}, by {date}.":
        "Cover text the print vendor puts on the letter with a postal invoice.",
    "Please find enclosed credit note {invoiceNumber} from {seller}, correcting invoice {correcting}. Amount credited: {amount}.":
        "Cover text the print vendor puts on the letter with a postal credit note.",
}

_FIELD = re.compile(r"\{(\w+)\}")


def placeholders(text: str) -> frozenset[str]:
    return frozenset(_FIELD.findall(text))


def problems(msgid: str, msgstr: str) -> list[str]:
    """What is wrong with one translation (empty list: nothing)."""
    if not msgstr.strip():
        return ["no translation"]
    want, got = placeholders(msgid), placeholders(msgstr)
    out = [f"placeholder {{{p}}} is missing" for p in sorted(want - got)]
    out += [f"placeholder {{{p}}} is not one of {msgid!r}'s" for p in sorted(got - want)]
    if msgstr.count("{") != msgstr.count("}"):
        out.append("unbalanced braces")
    return out
