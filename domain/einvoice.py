"""An issued invoice as EN 16931 sees it: the semantic model the UBL and CII files are written from.

The business terms (BT-n) and groups (BG-n) of EN 16931-1 are named beside each field; the
syntaxes (adapters/einvoice_xml.py) only place them. Built from the invoice callbill issued
(the legal record), never recomputed: the amounts are the invoice's, and the totals must add
up the way the standard's rules check them (BR-CO-10 … BR-CO-17), which `from_invoice`
asserts before a file is written.

VAT categories (UNTDID 5305), decided from the invoice:
  S  standard or reduced rate (rate > 0)
  Z  zero-rated (a 0 % tax line, not reverse charge)
  E  exempt (a tax line the rate card marks `vatCategory: E`, with its exemption reason)
  AE reverse charge (art. 196; exemption reason code VATEX-EU-AE, both VAT numbers)
  O  not subject to VAT (no tax line at all: a supply outside the scope, the US demo's)
Units (UN/ECE Recommendation 20): minute MIN, second SEC, a service or an adjustment C62 (one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from domain.money import minor_unit, round_money
from schemas.invoices import Invoice

UNIT_CODES = {"minute": "MIN", "second": "SEC", "service": "C62", "adjustment": "C62"}
INVOICE, CREDIT_NOTE = "380", "381"  # BT-3, UNTDID 1001
CUSTOMIZATION = "urn:cen.eu:en16931:2017"  # BT-24: the core EN 16931
EXEMPTION = {"AE": ("VATEX-EU-AE", "Reverse charge"), "O": ("VATEX-EU-O", "Not subject to VAT")}


class EInvoiceError(ValueError):
    """The invoice cannot be an EN 16931 e-invoice as it is; the message names what is missing."""


@dataclass(frozen=True)
class Party:  # BG-4 seller / BG-7 buyer
    name: str  # BT-27 / BT-44
    lines: tuple[str, ...]  # BT-35, BT-36, BT-162 / BT-50, BT-51, BT-163
    country: str  # BT-40 / BT-55 (ISO 3166-1 alpha-2)
    city: str | None = None  # BT-37 / BT-52
    postal_code: str | None = None  # BT-38 / BT-53
    vat_id: str | None = None  # BT-31 / BT-48, with its country prefix
    tax_registration: str | None = None  # BT-32: a tax id that is not a VAT number
    email: str | None = None  # BT-43 seller contact / BT-49 buyer electronic address

    def legal_id(self, in_vat_scope: bool) -> str | None:
        """BT-30 (BR-CO-26): outside VAT's scope the VAT number may not appear as one, and a party
        without a VAT number is identified by its tax registration."""
        return (self.vat_id if not in_vat_scope else None) or (self.tax_registration if not self.vat_id else None)


@dataclass(frozen=True)
class Line:  # BG-25
    id: str  # BT-126
    name: str  # BT-153
    quantity: Decimal  # BT-129
    unit: str  # BT-130
    net_price: Decimal  # BT-146 (unit price without VAT)
    net_amount: Decimal  # BT-131
    category: str  # BT-151
    rate: Decimal | None  # BT-152, percent (19 for 19 %); None for O


@dataclass(frozen=True)
class VatBreakdown:  # BG-23
    category: str  # BT-118
    rate: Decimal | None  # BT-119, percent
    taxable: Decimal  # BT-116
    tax: Decimal  # BT-117
    exemption_code: str | None = None  # BT-121
    exemption_reason: str | None = None  # BT-120


@dataclass(frozen=True)
class EInvoice:
    type_code: str  # BT-3
    number: str  # BT-1
    issue_date: date  # BT-2
    due_date: date | None  # BT-9
    currency: str  # BT-5
    buyer_reference: str  # BT-10 (the customer number)
    seller: Party
    buyer: Party
    supply_date: date  # BT-72 actual delivery date
    payment_terms: str | None  # BT-20
    lines: tuple[Line, ...]
    breakdown: tuple[VatBreakdown, ...]
    line_total: Decimal  # BT-106
    tax_exclusive: Decimal  # BT-109
    tax_total: Decimal  # BT-110
    tax_inclusive: Decimal  # BT-112
    payable: Decimal  # BT-115
    notes: tuple[str, ...] = ()  # BT-22
    preceding: tuple[str, date] | None = None  # BG-3: BT-25, BT-26 (a credit note's invoice)
    seller_payment_note: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def in_vat_scope(self) -> bool:
        """False when a line is outside VAT's scope (O): then no VAT numbers appear (BR-O-02..04)."""
        return not any(b.category == "O" for b in self.breakdown)


def percent(rate: Decimal) -> Decimal:
    return (rate * 100).normalize()


def _category(invoice: Invoice, tax) -> str:
    if tax.vatCategory:
        return tax.vatCategory
    if invoice.reverseCharge:
        return "AE"
    return "S" if tax.rate > 0 else "Z"


def from_invoice(invoice: Invoice, seller: Party, buyer: Party, type_code: str = INVOICE,
                 preceding: tuple[str, date] | None = None, payment_terms: str | None = None) -> EInvoice:
    """The EN 16931 view of an issued invoice (or credit note: type 381, `preceding` set)."""
    if invoice.is_credit_note and invoice.precedingInvoice is not None and preceding is None:
        type_code = CREDIT_NOTE
        preceding = (invoice.precedingInvoice.invoiceNumber, invoice.precedingInvoice.issueDate)
    cur = invoice.currency
    if minor_unit(cur) > 2 and any(round_money(x, cur) != round_money(x, cur).quantize(Decimal("0.01"))
                                   for x in (invoice.subtotal, invoice.taxTotal, invoice.total)):
        # EN 16931 allows at most 2 decimals in every amount (BR-DEC-*): a 3-decimal dinar amount
        # cannot be written without changing the invoice
        raise EInvoiceError(f"{cur} amounts with 3 decimals cannot be an EN 16931 e-invoice (at most 2 decimals)")
    by_category: dict[str, list] = {}
    for t in invoice.taxes:
        by_category.setdefault(t.category or "standard", []).append(t)
    for cat, taxes in by_category.items():
        if len(taxes) > 1:
            raise EInvoiceError(f"{len(taxes)} taxes on the same lines ({', '.join(t.name for t in taxes)}): "
                                "EN 16931 has one VAT rate per line")
    lines, breakdown = [], []
    for n, li in enumerate(invoice.lineItems, 1):
        tax = (by_category.get(li.taxCategory) or [None])[0]
        category = _category(invoice, tax) if tax is not None else "O"
        rate = percent(tax.rate) if tax is not None and category != "O" else None
        lines.append(Line(str(n), li.description, Decimal(li.quantity), UNIT_CODES.get(li.unit, "C62"),
                          li.unitPrice, li.amount, category, rate))
    groups: dict[tuple[str, Decimal | None], list[Line]] = {}
    for line in lines:
        groups.setdefault((line.category, line.rate), []).append(line)
    for (category, rate), group in groups.items():
        taxable = sum((g.net_amount for g in group), Decimal(0))
        match = [t for t in invoice.taxes if _category(invoice, t) == category and
                 (rate is None or percent(t.rate) == rate)]
        tax_amount = sum((t.amount for t in match), Decimal(0)) if category in ("S",) else Decimal(0)
        code, reason = EXEMPTION.get(category, (None, None))
        if category == "E":
            code, reason = None, match[0].exemptionReason
        breakdown.append(VatBreakdown(category, rate, round_money(taxable, cur), round_money(tax_amount, cur),
                                      code, reason))
    if not (seller.vat_id or seller.tax_registration):
        raise EInvoiceError("the seller has no VAT number or tax registration (CALLBILL_SELLER_TAX_ID; BR-CO-26)")
    if any(b.category == "AE" for b in breakdown) and not (seller.vat_id and buyer.vat_id):
        raise EInvoiceError("reverse charge needs both VAT numbers (BR-AE-02)")
    line_total = sum((li.net_amount for li in lines), Decimal(0))
    tax_total = sum((b.tax for b in breakdown), Decimal(0))
    e = EInvoice(type_code=type_code, number=invoice.invoiceNumber, issue_date=invoice.issueDate,
                 due_date=invoice.dueDate, currency=cur, buyer_reference=invoice.customerReference, seller=seller,
                 buyer=buyer, supply_date=invoice.serviceDate, payment_terms=payment_terms, lines=tuple(lines),
                 breakdown=tuple(breakdown), line_total=line_total, tax_exclusive=line_total, tax_total=tax_total,
                 tax_inclusive=line_total + tax_total, payable=invoice.total, notes=tuple(invoice.notes),
                 preceding=preceding)
    if (e.line_total, e.tax_total, e.payable) != (invoice.subtotal, invoice.taxTotal, e.tax_inclusive):
        raise EInvoiceError("the invoice's totals do not add up the way EN 16931 checks them "
                            f"(lines {e.line_total}, tax {e.tax_total}, total {invoice.total})")
    return e


def seller_party(name: str, address: tuple[str, ...], country: str, tax_id: str | None, contact: str | None) -> Party:
    """The seller (BG-4) from the settings: the tax id is the VAT number (BT-31) when it is one
    of the seller's country, else a tax registration (BT-32)."""
    from domain.jurisdictions import eu_vat_country

    vat = tax_id if tax_id and eu_vat_country(tax_id) == country else None
    email = contact if contact and "@" in contact else None
    return Party(name, address, country, vat_id=vat, tax_registration=None if vat else tax_id, email=email)


def buyer_party(customer, invoice: Invoice) -> Party:
    """The buyer (BG-7) from the directory record; its country is required (BR-11)."""
    from domain.jurisdictions import eu_vat_country

    a = customer.postalAddress
    if a is None or not a.country:
        raise EInvoiceError("the customer's postal address has no country (BT-55, BR-11)")
    vat = invoice.buyerTaxId if invoice.buyerTaxId and eu_vat_country(invoice.buyerTaxId) else None
    return Party(customer.name or customer.customerId, tuple(x for x in (a.line1, a.line2) if x), a.country, a.city,
                 a.postalCode, vat_id=vat, tax_registration=None if vat else invoice.buyerTaxId, email=customer.email)


def wanted(customer, invoice: Invoice, default: str) -> str:
    """The e-invoice this customer gets: their record's choice, else the seller's default for
    a business customer (one with a VAT or tax number), else none."""
    if customer is not None and customer.einvoice is not None:
        return customer.einvoice
    return default if invoice.buyerTaxId else "none"
