"""What an invoice's PDF says, as data: every text formatted, nothing laid out.

The layout is a typst template (adapters/templates/invoice.typ, replaceable by the
operator), rendered by adapters/pdf.py. Keeping the content here keeps it pure and
testable, and gives the template nothing to compute: it places strings. Deterministic:
the same invoice gives the same data, and the renderer stamps the invoice's issue time,
so a reprocessed invoice overwrites its object with identical bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain import jurisdictions
from domain.i18n import Localizer, english
from domain.pricing import REVERSE_CHARGE_NOTE
from schemas.invoices import Invoice


@dataclass(frozen=True)
class Seller:
    name: str
    address: tuple[str, ...] = ()
    tax_id: str | None = None
    contact: str | None = None
    payment_instructions: str | None = None
    logo: Path | None = None
    country: str = "US"  # ISO 3166: the label of the seller's tax id, the jurisdiction's content


@dataclass(frozen=True)
class Buyer:
    name: str | None
    address: tuple[str, ...] = ()
    reference: str = ""
    country: str | None = None  # ISO 3166, from the postal address


REDUCED_MARK = "※"


def payment_terms(invoice: Invoice, loc: Localizer) -> str:
    """The payment-terms sentence, on the PDF and as the e-invoice's BT-20."""
    return loc.t("Payment terms: {days} days. Please pay {amount} by {date}, quoting {number}.",
                 days=loc.number(invoice.paymentTermsDays), amount=loc.money(invoice.total, invoice.currency),
                 date=loc.date(invoice.dueDate, "long"), number=invoice.invoiceNumber)


def document_data(invoice: Invoice, seller: Seller, buyer: Buyer, loc: Localizer | None = None) -> dict[str, Any]:
    """The template's input (JSON): the invoice as the customer reads it, in their language.

    The legal content (domain/jurisdictions.py): both parties' tax ids with their country's
    label, the date of supply, unit prices without VAT, the tax per rate with its base, and
    for reverse charge the words in the invoice's language (EU art. 226(11a)); for a
    Japanese seller the registration number and the reduced-rate mark.
    """
    loc = loc or english()
    t, cur = loc.t, invoice.currency
    money = lambda a: loc.money(a, cur)  # noqa: E731
    label = lambda country: jurisdictions.label(country, loc.language, loc.gettext)  # noqa: E731
    seller_lines = [*seller.address, f"{label(seller.country)}: {seller.tax_id}" if seller.tax_id else "",
                    seller.contact or ""]
    reduced = any(li.taxCategory == "reduced" for li in invoice.lineItems)
    totals = [[t("Subtotal"), money(invoice.subtotal)],
              *([t("{tax} {rate} on {base}", tax=tx.name, rate=loc.percent(tx.rate), base=money(tx.base))
                 + (f" {REDUCED_MARK}" if tx.category == "reduced" else ""), money(tx.amount)]
                for tx in invoice.taxes),
              [t("Total credited" if invoice.is_credit_note else "Total due"), money(invoice.total)]]
    paragraphs = []
    if invoice.reverseCharge:
        paragraphs += [t("Reverse charge"), t(REVERSE_CHARGE_NOTE)]
    if reduced:
        paragraphs.append(t("Items marked {mark} are taxed at the reduced rate.", mark=REDUCED_MARK))
    if seller.country == "JP" and invoice.taxes:  # qualified invoice: the taxable amount and tax per rate
        paragraphs.append(t("Tax per rate") + ": " + "; ".join(
            t("{rate} taxable {base}, tax {tax}", rate=loc.percent(tx.rate) + (REDUCED_MARK if tx.category else ""),
              base=money(tx.base), tax=money(tx.amount)) for tx in invoice.taxes))
    if invoice.precedingInvoice is not None:  # a credit note: what it corrects and why, nothing to pay
        before = invoice.precedingInvoice
        paragraphs += [t("This credit note corrects invoice {number} of {date}. {amount} is credited to your account.",
                         number=before.invoiceNumber, date=loc.date(before.issueDate, "long"),
                         amount=money(invoice.total)),
                       *(f"{t('Reason')}: {n}" for n in invoice.notes)]
    else:
        paragraphs += [payment_terms(invoice, loc),
                       *([seller.payment_instructions] if seller.payment_instructions else []),
                       *(t(n) for n in invoice.notes if n != REVERSE_CHARGE_NOTE)]
    buyer_country = (jurisdictions.eu_vat_country(invoice.buyerTaxId) if invoice.buyerTaxId else None) or buyer.country
    buyer_lines = [x for x in (buyer.name or buyer.reference, *buyer.address) if x]
    if invoice.buyerTaxId:
        buyer_lines.append(f"{label(buyer_country)}: {invoice.buyerTaxId}")
    credit = invoice.precedingInvoice is not None
    title = t("Credit note {number}" if credit else "Invoice {number}", number=invoice.invoiceNumber)
    meta = [[t("Credit note number" if credit else "Invoice number"), invoice.invoiceNumber],
            [t("Issue date"), loc.date(invoice.issueDate)]]
    if credit:
        meta.append([t("Corrected invoice"), f"{invoice.precedingInvoice.invoiceNumber} "
                                             f"({loc.date(invoice.precedingInvoice.issueDate)})"])
    meta.append([t("Date of supply"), loc.date(invoice.serviceDate)])
    if not credit:
        meta.append([t("Due date"), loc.date(invoice.dueDate)])
    meta += [[t("Customer number"), invoice.customerReference], [t("Reference"), invoice.interactionId],
             [t("Time zone"), invoice.timezone]]
    return {
        "title": title, "lang": loc.language, "region": loc.locale.territory, "dir": "rtl" if loc.rtl else "ltr",
        "labels": {"heading": t("CREDIT NOTE" if credit else "INVOICE"), "billTo": t("Bill to"),
                   "pageOf": t("Page {page} of {total}"),
                   "columns": [t("Description"), t("Qty"), t("Unit"), t("Unit price"), t("Amount")]},
        "seller": {"name": seller.name, "lines": [x for x in seller_lines if x],
                   "logo": str(seller.logo) if seller.logo else None},
        "meta": meta,
        "buyer": buyer_lines,
        "lines": [[li.description + (f" {REDUCED_MARK}" if li.taxCategory == "reduced" else ""),
                   loc.number(li.quantity), t(li.unit), loc.unit_price(li.unitPrice, cur), money(li.amount)]
                  for li in invoice.lineItems],
        "totals": totals, "paragraphs": paragraphs,
    }
