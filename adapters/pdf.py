"""Invoice PDFs from the typst template (adapters/templates/invoice.typ or the operator's own).

One compiler per process, reused: the fonts are read once, and typst memoizes layout
between compilations, so what did not change since the last invoice (the header, the
seller, the table's shape) is not laid out again. The output is deterministic: the
document's date is the invoice's issue time, and typst derives the PDF's identifier from
the content, so the same invoice gives the same bytes.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import typst

from adapters.facturx import embed
from adapters.fonts import font_dirs
from domain.i18n import Localizer
from domain.invoice_pdf import Buyer, Seller, document_data
from schemas.invoices import Invoice, LineItem

DEFAULT_TEMPLATE = Path(__file__).with_name("templates") / "invoice.typ"


class RenderError(Exception):
    """The template could not make this invoice's PDF; the text is typst's message."""


class InvoiceRenderer:
    def __init__(self, template: Path | None = None) -> None:
        self.template = (template or DEFAULT_TEMPLATE).resolve()
        self._compiler: typst.Compiler | None = None
        self._lock = threading.Lock()  # one compilation at a time per compiler (it is not re-entrant)

    def _get(self) -> typst.Compiler:
        if self._compiler is None:
            if not self.template.is_file():
                raise RenderError(f"invoice template {self.template} does not exist")
            # root "/": the template may name a logo anywhere the settings point
            self._compiler = typst.Compiler(str(self.template), root="/", font_paths=[str(d) for d in font_dirs()],
                                            ignore_system_fonts=True)
        return self._compiler

    def render(self, invoice: Invoice, seller: Seller, buyer: Buyer, loc: Localizer | None = None,
               facturx: bytes | None = None) -> bytes:
        """The invoice PDF; with `facturx` (the CII XML), a PDF/A-3b Factur-X with the XML inside."""
        data = json.dumps(document_data(invoice, seller, buyer, loc), ensure_ascii=False, separators=(",", ":"))
        issued = invoice.issuedAt.astimezone(timezone.utc).replace(microsecond=0)  # typst takes whole seconds
        with self._lock:
            try:
                # untagged: a tagged PDF is 60 % larger for one page, 10x for 200 lines (docs/documents.md)
                pdf = self._get().compile(format="pdf", sys_inputs={"data": data}, timestamp=issued, pdf_tags=False,
                                          pdf_standards=["a-3b"] if facturx is not None else None)
            except typst.TypstError as e:
                raise RenderError(str(e.message).strip()[:500]) from None
        assert isinstance(pdf, bytes)
        if facturx is not None:
            pdf = embed(pdf, facturx, issued)
        return pdf

    def check(self, loc: Localizer | None = None) -> None:
        """Compile a sample invoice: a broken template is refused at start-up, not at the first invoice."""
        seller, buyer = Seller("Seller", ("1 Street",), "TAX-1", "billing@seller.test"), Buyer("Buyer 山田", ("2 Street",), "CUST-1")
        self.render(sample_invoice(), seller, buyer, loc)
        if loc is None:  # and once as PDF/A-3 (Factur-X): a template PDF/A refuses is refused now
            self.render(sample_invoice(), seller, buyer, None, facturx=b"<sample/>")


def sample_invoice() -> Invoice:
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return Invoice(
        interactionId="sample", invoiceNumber="INV00-000001", series="INV00", issuer="callbill",
        customerReference="CUST-1", rateId="sample", currency="USD", subtotal=Decimal("1.00"), taxes=[],
        taxTotal=Decimal("0.00"), total=Decimal("1.00"), timezone="UTC", serviceAt=at, serviceAtLocal=at,
        serviceDate=at.date(), issueDate=at.date(), dueDate=at.date(), paymentTermsDays=30,
        deliveryChannel="EMAIL", issuedAt=at,
        lineItems=[LineItem(description="Sample", quantity=1, unit="minute", unitPrice=Decimal("1.00"),
                            amount=Decimal("1.00"))])
