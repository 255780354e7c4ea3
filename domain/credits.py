"""Credit notes: correcting an issued invoice the lawful way, in full or in part (issue 19).

Pure rules; agents/credits.py numbers, records and publishes them (docs/credit-notes.md).
What is decided here:
- what is credited: the whole invoice (what remains of it), some of its lines, or a net amount;
- the taxes: the invoice's own rates per category, never today's rate card (a credit corrects
  that supply, at the tax it bore), reverse charge included;
- the bound: everything credited on an invoice never exceeds its total;
- the idempotency key: derived from the request, so the same command given twice is one credit
  note (the command prints the key, and a key given explicitly wins).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import AwareDatetime

from domain.reasons import Refusal
from domain.money import fits_currency, round_money
from schemas.credits import CreditRequest
from schemas.invoices import CREDIT_NOTE, Invoice, LineItem, PrecedingInvoice, TaxAmount, Totals


class CreditError(Refusal, ValueError):
    """A credit that cannot be issued; `reason` is the review or API error code."""


class CreditNote(Totals):
    creditNumber: str
    series: str
    idempotencyKey: str
    invoiceNumber: str  # BG-3: the invoice it corrects
    invoiceIssueDate: date
    interactionId: str
    customerReference: str
    reason: str
    issueDate: date
    issuedAt: AwareDatetime
    locale: str = "en"
    buyerTaxId: str | None = None
    reverseCharge: bool = False

    def as_invoice(self, invoice: Invoice) -> Invoice:
        """The credit note in the invoice's shape: what documents and delivery handle, the PDF
        and the e-invoice (type 381, BG-3 the invoice). Nothing is due on it: the due date is
        its issue date (EN 16931 BR-CO-25 wants one for a positive amount)."""
        return invoice.model_copy(update={
            "invoiceNumber": self.creditNumber, "series": self.series, "lineItems": self.lineItems,
            "subtotal": self.subtotal, "taxes": self.taxes, "taxTotal": self.taxTotal, "total": self.total,
            "issueDate": self.issueDate, "dueDate": self.issueDate, "paymentTermsDays": 0,
            "issuedAt": self.issuedAt, "notes": [self.reason],
            "documentType": CREDIT_NOTE, "erpInvoiceId": None,
            "precedingInvoice": PrecedingInvoice(invoiceNumber=self.invoiceNumber, issueDate=self.invoiceIssueDate)})


def _tax_for(invoice: Invoice, category: str) -> list[TaxAmount]:
    return [t for t in invoice.taxes if (t.category or "standard") == category]


def credit(invoice: Invoice, request: CreditRequest, credited_before: Decimal, number: str, series: str,
           issue_day: date, now: datetime) -> CreditNote:
    """The credit note for `request` on `invoice`, of which `credited_before` (gross) is already credited."""
    cur = invoice.currency
    remaining = invoice.total - credited_before
    if remaining <= 0:
        raise CreditError("ALREADY_CREDITED", f"invoice {invoice.invoiceNumber} is credited in full")
    if request.lines is not None:
        bad = [n for n in request.lines if not 1 <= n <= len(invoice.lineItems)]
        if bad or len(set(request.lines)) != len(request.lines):
            raise CreditError("NO_SUCH_LINE", f"the invoice has lines 1 to {len(invoice.lineItems)}")
        lines = [invoice.lineItems[n - 1] for n in sorted(request.lines)]
    elif request.amount is not None:
        categories = {li.taxCategory for li in invoice.lineItems}
        if len(categories) > 1:
            raise CreditError("AMOUNT_NEEDS_ONE_RATE", "the invoice has several tax rates: credit lines instead")
        if not fits_currency(request.amount, cur):
            raise CreditError("INVALID_AMOUNT", f"more decimals than {cur} has")
        cat = categories.pop() if categories else "standard"
        lines = [LineItem(description=request.reason[:200], quantity=1, unit="adjustment",
                          unitPrice=request.amount, amount=request.amount, taxCategory=cat)]
    elif credited_before == 0:
        lines = list(invoice.lineItems)
    else:  # "the rest": what remains, as one line at the invoice's single rate
        return credit(invoice, request.model_copy(update={"amount": _net_of(invoice, remaining)}), credited_before,
                      number, series, issue_day, now)
    taxes = []
    for category in dict.fromkeys(li.taxCategory for li in lines):
        base = round_money(sum((li.amount for li in lines if li.taxCategory == category), Decimal(0)), cur)
        for t in _tax_for(invoice, category):
            taxes.append(t.model_copy(update={"base": base, "amount": round_money(base * t.rate, cur)}))
    subtotal = round_money(sum((li.amount for li in lines), Decimal(0)), cur)
    tax_total = round_money(sum((t.amount for t in taxes), Decimal(0)), cur)
    total = subtotal + tax_total
    if total > remaining:
        raise CreditError("EXCEEDS_INVOICE", f"{total} {cur} asked, {remaining} {cur} of the invoice is not yet "
                                             "credited")
    return CreditNote(creditNumber=number, series=series, idempotencyKey=request.key(),
                      invoiceNumber=invoice.invoiceNumber, invoiceIssueDate=invoice.issueDate,
                      interactionId=invoice.interactionId, customerReference=invoice.customerReference,
                      reason=request.reason, currency=cur, lineItems=lines, subtotal=subtotal, taxes=taxes,
                      taxTotal=tax_total, total=total, issueDate=issue_day, issuedAt=now, locale=invoice.locale,
                      buyerTaxId=invoice.buyerTaxId, reverseCharge=invoice.reverseCharge)


def _net_of(invoice: Invoice, gross: Decimal) -> Decimal:
    """The net amount whose tax at the invoice's rates makes at most `gross` (rounded down to the minor unit)."""
    rate = sum((t.rate for t in invoice.taxes if t.category is None), Decimal(0))
    net = round_money(gross / (1 + rate), invoice.currency)
    while net > 0 and net + round_money(net * rate, invoice.currency) > gross:
        net -= Decimal(1).scaleb(-max(0, -net.as_tuple().exponent))
    return net
