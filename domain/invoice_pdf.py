"""What an invoice's PDF says, as data: every text formatted, nothing laid out.

The layout is a typst template (adapters/templates/invoice.typ, replaceable by the
operator), rendered by adapters/pdf.py. Keeping the content here keeps it pure and
testable, and gives the template nothing to compute: it places strings. Deterministic:
the same invoice gives the same data, and the renderer stamps the invoice's issue time,
so a reprocessed invoice overwrites its object with identical bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas.invoices import Invoice


@dataclass(frozen=True)
class Seller:
    name: str
    address: tuple[str, ...] = ()
    tax_id: str | None = None
    contact: str | None = None
    payment_instructions: str | None = None
    logo: Path | None = None


@dataclass(frozen=True)
class Buyer:
    name: str | None
    address: tuple[str, ...] = ()
    reference: str = ""


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:,} {currency}"


def percent(rate: Decimal) -> str:
    pct = (rate * 100).normalize()
    return f"{pct:f}%"


LABELS = {  # English; the languages issue turns these into catalog messages
    "heading": "INVOICE", "billTo": "BILL TO", "page": "Page", "of": "of",
    "columns": ["Description", "Qty", "Unit", "Unit price", "Amount"],
}


def document_data(invoice: Invoice, seller: Seller, buyer: Buyer) -> dict[str, Any]:
    """The template's input (JSON): the invoice as the customer reads it."""
    cur = invoice.currency
    seller_lines = [*seller.address, f"Tax ID: {seller.tax_id}" if seller.tax_id else "", seller.contact or ""]
    totals = [["Subtotal", money(invoice.subtotal, cur)],
              *([f"{t.name} {percent(t.rate)} ({t.jurisdiction})", money(t.amount, cur)] for t in invoice.taxes),
              ["Total due", money(invoice.total, cur)]]
    paragraphs = [f"Payment terms: {invoice.paymentTermsDays} days. Please pay {money(invoice.total, cur)} "
                  f"by {invoice.dueDate}, quoting {invoice.invoiceNumber}.",
                  *([seller.payment_instructions] if seller.payment_instructions else []), *invoice.notes]
    return {
        "title": f"Invoice {invoice.invoiceNumber}", "lang": "en", "labels": LABELS,
        "seller": {"name": seller.name, "lines": [x for x in seller_lines if x],
                   "logo": str(seller.logo) if seller.logo else None},
        "meta": [["Invoice number", invoice.invoiceNumber], ["Issue date", str(invoice.issueDate)],
                 ["Service date", str(invoice.serviceDate)], ["Due date", str(invoice.dueDate)],
                 ["Customer", invoice.customerReference], ["Reference", invoice.interactionId],
                 ["Timezone", invoice.timezone]],
        "buyer": [x for x in (buyer.name or buyer.reference, *buyer.address) if x],
        "lines": [[li.description, str(li.quantity), li.unit, money(li.unitPrice, cur), money(li.amount, cur)]
                  for li in invoice.lineItems],
        "totals": totals, "paragraphs": paragraphs,
    }
