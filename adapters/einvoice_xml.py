"""EN 16931 e-invoices written as UBL 2.1 (Invoice / CreditNote) from domain/einvoice.py's model.

Only placement happens here: every amount, category and total was decided by the domain.
Element order follows the UBL 2.1 schema, which the standard's XSLT does not check but
receivers' schema validation does. Deterministic: the same invoice gives the same bytes.
"""
from __future__ import annotations

from decimal import Decimal
from xml.etree import ElementTree as ET

from domain.einvoice import CREDIT_NOTE, CUSTOMIZATION, EInvoice, Party

NS = {
    "": "urn:oasis:names:specification:ubl:schema:xsd:{doc}-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
CAC, CBC = "{%s}" % NS["cac"], "{%s}" % NS["cbc"]
PEPPOL_CUSTOMIZATION = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


def _amount(value: Decimal) -> str:
    """At most 2 decimals (BR-DEC-*): a 3-decimal currency's amount that fits is written as it (10.070 → 10.07)."""
    if value.as_tuple().exponent < -2 and value == value.quantize(Decimal("0.01")):
        value = value.quantize(Decimal("0.01"))
    return f"{value:f}"


def _cbc(parent: ET.Element, tag: str, text: object, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, CBC + tag, attrs)
    el.text = str(text)
    return el


def _cac(parent: ET.Element, tag: str) -> ET.Element:
    return ET.SubElement(parent, CAC + tag)


def _party(parent: ET.Element, p: Party, vat_ids: bool) -> None:
    party = _cac(parent, "Party")
    if p.email:
        _cbc(party, "EndpointID", p.email, schemeID="EM")  # BT-34 / BT-49
    _cbc(_cac(party, "PartyName"), "Name", p.name)
    addr = _cac(party, "PostalAddress")
    if p.lines:
        _cbc(addr, "StreetName", p.lines[0])
    if len(p.lines) > 1:
        _cbc(addr, "AdditionalStreetName", p.lines[1])
    if p.city:
        _cbc(addr, "CityName", p.city)
    if p.postal_code:
        _cbc(addr, "PostalZone", p.postal_code)
    if len(p.lines) > 2:
        _cbc(_cac(addr, "AddressLine"), "Line", ", ".join(p.lines[2:]))
    _cbc(_cac(addr, "Country"), "IdentificationCode", p.country)
    if p.vat_id and vat_ids:
        scheme = _cac(party, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", p.vat_id)
        _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")
    if p.tax_registration:  # BT-32: a tax registration that is not a VAT number
        scheme = _cac(party, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", p.tax_registration)
        _cbc(_cac(scheme, "TaxScheme"), "ID", "LOC")
    legal = _cac(party, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", p.name)
    legal_id = p.legal_id(vat_ids)  # BT-30
    if legal_id:
        _cbc(legal, "CompanyID", legal_id)
    if p.email:
        _cbc(_cac(party, "Contact"), "ElectronicMail", p.email)


def _category(parent: ET.Element, tag: str, category: str, rate: Decimal | None,
              code: str | None = None, reason: str | None = None) -> None:
    cat = _cac(parent, tag)
    _cbc(cat, "ID", category)
    if rate is not None:
        _cbc(cat, "Percent", _amount(rate))
    if code:
        _cbc(cat, "TaxExemptionReasonCode", code)
    if reason:
        _cbc(cat, "TaxExemptionReason", reason)
    _cbc(_cac(cat, "TaxScheme"), "ID", "VAT")


def ubl(e: EInvoice, peppol: bool = True) -> bytes:
    """UBL 2.1 Invoice (380) or CreditNote (381); `peppol`: the Peppol BIS Billing 3.0 ids."""
    doc = "CreditNote" if e.type_code == CREDIT_NOTE else "Invoice"
    ET.register_namespace("", NS[""].format(doc=doc))
    ET.register_namespace("cac", NS["cac"])
    ET.register_namespace("cbc", NS["cbc"])
    root = ET.Element("{%s}%s" % (NS[""].format(doc=doc), doc))
    cur = e.currency
    _cbc(root, "CustomizationID", PEPPOL_CUSTOMIZATION if peppol else CUSTOMIZATION)  # BT-24
    if peppol:
        _cbc(root, "ProfileID", PEPPOL_PROFILE)  # BT-23
    _cbc(root, "ID", e.number)  # BT-1
    _cbc(root, "IssueDate", e.issue_date.isoformat())  # BT-2
    if e.due_date and doc == "Invoice":
        _cbc(root, "DueDate", e.due_date.isoformat())  # BT-9
    _cbc(root, "InvoiceTypeCode" if doc == "Invoice" else "CreditNoteTypeCode", e.type_code)  # BT-3
    for note in e.notes:
        _cbc(root, "Note", note)  # BT-22
    _cbc(root, "DocumentCurrencyCode", cur)  # BT-5
    _cbc(root, "BuyerReference", e.buyer_reference)  # BT-10
    if e.preceding:  # BG-3
        ref = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(ref, "ID", e.preceding[0])
        _cbc(ref, "IssueDate", e.preceding[1].isoformat())
    _party(_cac(root, "AccountingSupplierParty"), e.seller, e.in_vat_scope)
    _party(_cac(root, "AccountingCustomerParty"), e.buyer, e.in_vat_scope)
    _cbc(_cac(root, "Delivery"), "ActualDeliveryDate", e.supply_date.isoformat())  # BT-72
    if e.payment_terms:
        _cbc(_cac(root, "PaymentTerms"), "Note", e.payment_terms)  # BT-20
    total = _cac(root, "TaxTotal")
    _cbc(total, "TaxAmount", _amount(e.tax_total), currencyID=cur)  # BT-110
    for b in e.breakdown:
        sub = _cac(total, "TaxSubtotal")
        _cbc(sub, "TaxableAmount", _amount(b.taxable), currencyID=cur)  # BT-116
        _cbc(sub, "TaxAmount", _amount(b.tax), currencyID=cur)  # BT-117
        _category(sub, "TaxCategory", b.category, b.rate if b.category != "O" else None, b.exemption_code,
                  b.exemption_reason)
    money = _cac(root, "LegalMonetaryTotal")
    _cbc(money, "LineExtensionAmount", _amount(e.line_total), currencyID=cur)  # BT-106
    _cbc(money, "TaxExclusiveAmount", _amount(e.tax_exclusive), currencyID=cur)  # BT-109
    _cbc(money, "TaxInclusiveAmount", _amount(e.tax_inclusive), currencyID=cur)  # BT-112
    _cbc(money, "PayableAmount", _amount(e.payable), currencyID=cur)  # BT-115
    for li in e.lines:
        line = _cac(root, "InvoiceLine" if doc == "Invoice" else "CreditNoteLine")
        _cbc(line, "ID", li.id)  # BT-126
        _cbc(line, "InvoicedQuantity" if doc == "Invoice" else "CreditedQuantity", _amount(li.quantity),
             unitCode=li.unit)  # BT-129, BT-130
        _cbc(line, "LineExtensionAmount", _amount(li.net_amount), currencyID=cur)  # BT-131
        item = _cac(line, "Item")
        _cbc(item, "Name", li.name)  # BT-153
        _category(item, "ClassifiedTaxCategory", li.category, li.rate)  # BT-151, BT-152
        _cbc(_cac(line, "Price"), "PriceAmount", _amount(li.net_price), currencyID=cur)  # BT-146
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


# --- UN/CEFACT Cross Industry Invoice D16B: the XML inside Factur-X / ZUGFeRD ----------------------

CII_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}
RSM, RAM, UDT, QDT = ("{%s}" % CII_NS[k] for k in ("rsm", "ram", "udt", "qdt"))


def _ram(parent: ET.Element, tag: str, text: object | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, RAM + tag, attrs)
    if text is not None:
        el.text = str(text)
    return el


def _date(parent: ET.Element, tag: str, day, ns: str = UDT) -> None:
    el = ET.SubElement(_ram(parent, tag), ns + "DateTimeString", {"format": "102"})
    el.text = day.strftime("%Y%m%d")


def _cii_party(parent: ET.Element, tag: str, p: Party, vat_ids: bool, seller: bool) -> None:
    party = _ram(parent, tag)
    _ram(party, "Name", p.name)
    legal_id = p.legal_id(vat_ids)
    if legal_id and seller:
        _ram(_ram(party, "SpecifiedLegalOrganization"), "ID", legal_id)  # BT-30
    if p.email and seller:
        _ram(_ram(_ram(party, "DefinedTradeContact"), "EmailURIUniversalCommunication"), "URIID", p.email)  # BT-43
    addr = _ram(party, "PostalTradeAddress")
    if p.postal_code:
        _ram(addr, "PostcodeCode", p.postal_code)
    for tag_, line in zip(("LineOne", "LineTwo", "LineThree"), (*p.lines[:2], ", ".join(p.lines[2:]) or None)):
        if line:
            _ram(addr, tag_, line)
    if p.city:
        _ram(addr, "CityName", p.city)
    _ram(addr, "CountryID", p.country)
    if p.email:
        _ram(_ram(party, "URIUniversalCommunication"), "URIID", p.email, schemeID="EM")  # BT-34 / BT-49
    if p.vat_id and vat_ids:
        _ram(_ram(party, "SpecifiedTaxRegistration"), "ID", p.vat_id, schemeID="VA")  # BT-31 / BT-48
    elif p.tax_registration and seller:
        _ram(_ram(party, "SpecifiedTaxRegistration"), "ID", p.tax_registration, schemeID="FC")  # BT-32


def cii(e: EInvoice) -> bytes:
    """CII D16B with the EN 16931 guideline id: Factur-X's / ZUGFeRD's EN 16931 profile."""
    for prefix, uri in CII_NS.items():
        ET.register_namespace(prefix, uri)
    root = ET.Element(RSM + "CrossIndustryInvoice")
    ctx = ET.SubElement(root, RSM + "ExchangedDocumentContext")
    _ram(_ram(ctx, "GuidelineSpecifiedDocumentContextParameter"), "ID", CUSTOMIZATION)  # BT-24
    doc = ET.SubElement(root, RSM + "ExchangedDocument")
    _ram(doc, "ID", e.number)  # BT-1
    _ram(doc, "TypeCode", e.type_code)  # BT-3
    _date(doc, "IssueDateTime", e.issue_date)  # BT-2
    for note in e.notes:
        _ram(_ram(doc, "IncludedNote"), "Content", note)  # BT-22
    trade = ET.SubElement(root, RSM + "SupplyChainTradeTransaction")
    for li in e.lines:
        item = _ram(trade, "IncludedSupplyChainTradeLineItem")
        _ram(_ram(item, "AssociatedDocumentLineDocument"), "LineID", li.id)  # BT-126
        _ram(_ram(item, "SpecifiedTradeProduct"), "Name", li.name)  # BT-153
        _ram(_ram(_ram(item, "SpecifiedLineTradeAgreement"), "NetPriceProductTradePrice"), "ChargeAmount",
             _amount(li.net_price))  # BT-146
        _ram(_ram(item, "SpecifiedLineTradeDelivery"), "BilledQuantity", _amount(li.quantity), unitCode=li.unit)
        settle = _ram(item, "SpecifiedLineTradeSettlement")
        tax = _ram(settle, "ApplicableTradeTax")
        _ram(tax, "TypeCode", "VAT")
        _ram(tax, "CategoryCode", li.category)  # BT-151
        if li.rate is not None:
            _ram(tax, "RateApplicablePercent", _amount(li.rate))  # BT-152
        _ram(_ram(settle, "SpecifiedTradeSettlementLineMonetarySummation"), "LineTotalAmount",
             _amount(li.net_amount))  # BT-131
    agreement = _ram(trade, "ApplicableHeaderTradeAgreement")
    _ram(agreement, "BuyerReference", e.buyer_reference)  # BT-10
    _cii_party(agreement, "SellerTradeParty", e.seller, e.in_vat_scope, seller=True)
    _cii_party(agreement, "BuyerTradeParty", e.buyer, e.in_vat_scope, seller=False)
    delivery = _ram(trade, "ApplicableHeaderTradeDelivery")
    _date(_ram(delivery, "ActualDeliverySupplyChainEvent"), "OccurrenceDateTime", e.supply_date)  # BT-72
    settlement = _ram(trade, "ApplicableHeaderTradeSettlement")
    _ram(settlement, "InvoiceCurrencyCode", e.currency)  # BT-5
    for b in e.breakdown:  # BG-23
        tax = _ram(settlement, "ApplicableTradeTax")
        _ram(tax, "CalculatedAmount", _amount(b.tax))  # BT-117
        _ram(tax, "TypeCode", "VAT")
        if b.exemption_reason:
            _ram(tax, "ExemptionReason", b.exemption_reason)  # BT-120
        _ram(tax, "BasisAmount", _amount(b.taxable))  # BT-116
        _ram(tax, "CategoryCode", b.category)  # BT-118
        if b.exemption_code:
            _ram(tax, "ExemptionReasonCode", b.exemption_code)  # BT-121
        if b.rate is not None and b.category != "O":
            _ram(tax, "RateApplicablePercent", _amount(b.rate))  # BT-119
    if e.payment_terms or e.due_date:
        terms = _ram(settlement, "SpecifiedTradePaymentTerms")
        if e.payment_terms:
            _ram(terms, "Description", e.payment_terms)  # BT-20
        if e.due_date and e.type_code != CREDIT_NOTE:
            _date(terms, "DueDateDateTime", e.due_date)  # BT-9
    total = _ram(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation")
    _ram(total, "LineTotalAmount", _amount(e.line_total))  # BT-106
    _ram(total, "TaxBasisTotalAmount", _amount(e.tax_exclusive))  # BT-109
    _ram(total, "TaxTotalAmount", _amount(e.tax_total), currencyID=e.currency)  # BT-110
    _ram(total, "GrandTotalAmount", _amount(e.tax_inclusive))  # BT-112
    _ram(total, "DuePayableAmount", _amount(e.payable))  # BT-115
    if e.preceding:  # BG-3
        ref = _ram(settlement, "InvoiceReferencedDocument")
        _ram(ref, "IssuerAssignedID", e.preceding[0])
        _date(ref, "FormattedIssueDateTime", e.preceding[1], ns=QDT)
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
