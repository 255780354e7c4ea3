"""From a billable interaction and its customer to an invoice: pricing, dates, channel.

Pure: the agent supplies the customer record, the rate card, the invoice number (or the
ERP's answer) and the clock.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from domain.dates import InvoiceDates, invoice_dates
from domain.i18n import Localizer, english
from domain.jurisdictions import VatIdProblem, VatTreatment, vat_treatment
from domain.pricing import ERP_AMOUNTS_NOTE, PricingError, Priced, RateCard, price
from schemas.customers import Customer
from schemas.events import InteractionCompleted
from domain.money import fits_currency
from schemas.invoices import ErpAmounts, ErpInvoiceRequest, ErpInvoiceResponse, ErpLineItem, Invoice


class Draft(BaseModel):
    """Everything about an invoice except its number."""

    interaction: InteractionCompleted
    customerReference: str
    priced: Priced
    dates: InvoiceDates
    paymentTermsDays: int
    deliveryChannel: str
    locale: str = Field("en", exclude_if=lambda v: v == "en")  # left out at the default: older drafts read back unchanged
    buyerTaxId: str | None = Field(None, exclude_if=lambda v: v is None)


def delivery_channel(c: Customer) -> str:
    """The channel the invoice will most likely go by (the delivery stage decides finally).

    transactionalEmail: false is the guide's "No Email" flag; marketingEmail is ignored.
    """
    p = c.preferences
    if p.transactionalEmail and c.email:
        return "EMAIL"
    if p.sms and c.phone:
        return "SMS"
    if p.postal and c.postalAddress and c.postalAddress.line1:
        return "POSTAL"
    return "NONE"


def vat_for(customer: Customer, card: RateCard, seller_country: str | None) -> VatTreatment:
    """The buyer's VAT position before pricing; raises PricingError (INVALID_VAT_ID) for a bad number."""
    addr = customer.postalAddress
    try:
        _, jur = card.jurisdiction(addr.country if addr else None, addr.region if addr else None)
    except PricingError:
        return VatTreatment(False, (customer.taxId or "").strip() or None, None)  # price() names the problem
    try:
        return vat_treatment(jurisdiction_reverse_charge=jur.reverseCharge, buyer_tax_id=customer.taxId,
                             seller_country=seller_country)
    except VatIdProblem as e:
        raise PricingError(e.reason, e.detail) from None


def draft(interaction: InteractionCompleted, customer: Customer, card: RateCard,
          default_timezone: str | None, loc: Localizer | None = None, seller_country: str | None = None,
          vat: VatTreatment | None = None) -> Draft:
    """Raises PricingError or DateError (each with a review reason) when it cannot.

    `vat`: the buyer's VAT position as the stage settled it (after VIES, where that is on);
    None: decided here from the number's format and check digits.
    """
    loc = loc or english()
    vat = vat if vat is not None else vat_for(customer, card, seller_country)
    addr = customer.postalAddress
    priced = price(card, wrapup_code=interaction.wrapupCode, service_type=interaction.serviceType,
                   duration_seconds=interaction.durationSeconds, currency=customer.currency,
                   country=addr.country if addr else None, region=addr.region if addr else None,
                   reverse_charge=vat.reverse_charge, loc=loc)
    terms = customer.paymentTermsDays if customer.paymentTermsDays is not None else card.paymentTermsDays
    dates = invoice_dates(interaction.endedAt, customer.timezone, default_timezone, terms)
    return Draft(interaction=interaction, customerReference=customer.customerId, priced=priced, dates=dates,
                 paymentTermsDays=terms, deliveryChannel=delivery_channel(customer), locale=loc.tag,
                 buyerTaxId=vat.buyer_vat_id)


def erp_request(d: Draft) -> ErpInvoiceRequest:
    p = d.priced
    return ErpInvoiceRequest(
        sourceInteractionId=d.interaction.interactionId, requestedAmount=p.total, currency=p.currency,
        lineItems=[ErpLineItem(description=li.description, quantity=li.quantity, unitPrice=li.unitPrice)
                   for li in p.lineItems],
        customerReference=d.customerReference, deliveryChannel=d.deliveryChannel, priority=p.priority,
        issueDate=d.dates.issueDate, serviceDate=d.dates.serviceDate, dueDate=d.dates.dueDate,
        timezone=d.dates.timezone, subtotal=p.subtotal, taxes=p.taxes,
    )


def issue(d: Draft, number: str, series: str, now: datetime, erp: ErpInvoiceResponse | None = None) -> Invoice:
    """The invoice as issued; with an ERP answer, its number and amounts are the truth."""
    p = d.priced
    subtotal, tax_total, total, notes = p.subtotal, p.taxTotal, p.total, list(p.notes)
    if erp is not None:
        total = erp.total
        subtotal = erp.subtotal if erp.subtotal is not None else subtotal
        tax_total = erp.taxTotal if erp.taxTotal is not None else tax_total
        if (subtotal, tax_total, total) != (p.subtotal, p.taxTotal, p.total):
            notes.append(ERP_AMOUNTS_NOTE)
    return Invoice(
        interactionId=d.interaction.interactionId, invoiceNumber=number, series=series,
        issuer="erp" if erp else "callbill", erpInvoiceId=erp.invoiceId if erp else None,
        customerReference=d.customerReference, rateId=p.rateId, currency=p.currency, lineItems=p.lineItems,
        subtotal=subtotal, taxes=p.taxes, taxTotal=tax_total, total=total, notes=notes,
        timezone=d.dates.timezone, serviceAt=d.dates.serviceAt, serviceAtLocal=d.dates.serviceAtLocal,
        serviceDate=d.dates.serviceDate, issueDate=d.dates.issueDate, dueDate=d.dates.dueDate,
        paymentTermsDays=d.paymentTermsDays, deliveryChannel=d.deliveryChannel, issuedAt=now,
        locale=d.locale, buyerTaxId=d.buyerTaxId, reverseCharge=p.reverseCharge,
    )


def erp_amount_problems(currency: str, erp: ErpAmounts) -> list[str]:
    """What makes a well-formed ERP answer (an invoice or a credit note) wrong for a request in
    `currency` (fields named, values not: the answer may quote anything). The shape is checked
    by the answer's model itself."""
    problems = []
    if erp.currency is not None and erp.currency.upper() != currency:
        problems.append(f"currency: not the requested {currency}")
    for name in ("subtotal", "taxTotal", "total"):
        amount = getattr(erp, name)
        if amount is not None and not fits_currency(amount, currency):
            problems.append(f"{name}: more decimals than {currency} has")
    return problems
