"""The invoice as a PDF: layout only, from an issued invoice and the two parties.

Deterministic: the creation date is the invoice's issue time and nothing random goes in,
so the same invoice renders to the same bytes (and the same sha256) every time, and a
reprocessed invoice overwrites its object with identical content. Text in any script
renders: Noto Sans for Latin, Greek and Cyrillic, with a CJK fallback font that is only
embedded when the text needs it (it is large, and subsetting it costs time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

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


@dataclass(frozen=True)
class Fonts:
    regular: Path
    fallback: Path | None = None
    coverage: frozenset[int] = field(default_factory=frozenset)  # code points `regular` has

    def needs_fallback(self, text: str) -> bool:
        return self.fallback is not None and any(ord(c) not in self.coverage for c in text if c.isprintable())


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:,} {currency}"


def percent(rate: Decimal) -> str:
    pct = (rate * 100).normalize()
    return f"{pct:f}%"


class _Doc(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._title = title

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("body", size=8)
        self.set_text_color(110)
        self.cell(0, 5, f"{self._title}  ·  Page {self.page_no()} of {{nb}}", align="C")


def render(invoice: Invoice, seller: Seller, buyer: Buyer, fonts: Fonts) -> bytes:
    texts = [seller.name, *seller.address, buyer.name or "", *buyer.address, *(li.description for li in invoice.lineItems),
             *(t.name for t in invoice.taxes), *invoice.notes, seller.payment_instructions or ""]
    pdf = _Doc(f"Invoice {invoice.invoiceNumber}")
    pdf.set_creation_date(invoice.issuedAt)
    pdf.set_title(f"Invoice {invoice.invoiceNumber}")
    pdf.set_author(seller.name)
    pdf.set_subject(f"Invoice {invoice.invoiceNumber}")
    pdf.set_creator("callbill")
    pdf.alias_nb_pages()
    pdf.add_font("body", "", str(fonts.regular))
    if fonts.needs_fallback("".join(texts)):
        pdf.add_font("fallback", "", str(fonts.fallback))
        pdf.set_fallback_fonts(["fallback"], exact_match=False)
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_margins(15, 15, 15)
    pdf.add_page()
    width = pdf.epw

    # header: seller left, the invoice's identity right
    top = pdf.get_y()
    if seller.logo and seller.logo.exists():
        pdf.image(str(seller.logo), x=15, y=top, h=14)
        pdf.set_y(top + 16)
    pdf.set_font("body", size=15)
    pdf.multi_cell(width * 0.55, 7, seller.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("body", size=9)
    for line in (*seller.address, f"Tax ID: {seller.tax_id}" if seller.tax_id else "", seller.contact or ""):
        if line:
            pdf.multi_cell(width * 0.55, 4.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    left_bottom = pdf.get_y()

    pdf.set_xy(15 + width * 0.58, top)
    pdf.set_font("body", size=20)
    pdf.cell(width * 0.42, 9, "INVOICE", align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("body", size=9)
    for label, value in (("Invoice number", invoice.invoiceNumber), ("Issue date", str(invoice.issueDate)),
                         ("Service date", str(invoice.serviceDate)), ("Due date", str(invoice.dueDate)),
                         ("Customer", invoice.customerReference), ("Reference", invoice.interactionId),
                         ("Timezone", invoice.timezone)):
        pdf.set_x(15 + width * 0.58)
        pdf.cell(width * 0.17, 4.8, label, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.multi_cell(width * 0.25, 4.8, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)

    # buyer
    pdf.set_font("body", size=8)
    pdf.set_text_color(110)
    pdf.cell(0, 4, "BILL TO", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.set_font("body", size=10)
    for line in (buyer.name or buyer.reference, *buyer.address):
        if line:
            pdf.multi_cell(width * 0.6, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)

    # line items: the heading row repeats on every page the table spans
    pdf.set_font("body", size=9)
    with pdf.table(col_widths=(50, 9, 11, 15, 15), text_align=("LEFT", "RIGHT", "LEFT", "RIGHT", "RIGHT"),
                   repeat_headings=1, line_height=5.5, first_row_as_headings=True,
                   headings_style=FontFace(color=255, fill_color=(60, 60, 60))) as table:
        table.row(("Description", "Qty", "Unit", "Unit price", "Amount"))
        for li in invoice.lineItems:
            table.row((li.description, str(li.quantity), li.unit, money(li.unitPrice, invoice.currency),
                       money(li.amount, invoice.currency)))
    pdf.ln(3)

    # totals
    def total_row(label: str, value: str, size: float = 9) -> None:
        pdf.set_font("body", size=size)
        pdf.set_x(15 + width * 0.45)
        pdf.cell(width * 0.33, 6, label, align="R")
        pdf.cell(width * 0.22, 6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    total_row("Subtotal", money(invoice.subtotal, invoice.currency))
    for t in invoice.taxes:
        total_row(f"{t.name} {percent(t.rate)} ({t.jurisdiction})", money(t.amount, invoice.currency))
    total_row("Total due", money(invoice.total, invoice.currency), size=12)
    pdf.ln(6)

    pdf.set_font("body", size=9)
    pdf.multi_cell(0, 5, f"Payment terms: {invoice.paymentTermsDays} days. Please pay {money(invoice.total, invoice.currency)} "
                         f"by {invoice.dueDate}, quoting {invoice.invoiceNumber}.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if seller.payment_instructions:
        pdf.multi_cell(0, 5, seller.payment_instructions, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for note in invoice.notes:
        pdf.multi_cell(0, 5, note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
