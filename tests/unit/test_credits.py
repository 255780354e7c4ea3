"""Credit notes (domain/credits.py): full, partial, bounded, at the invoice's own rates, and as e-invoices."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from adapters.einvoice_xml import cii, ubl
from domain.credits import CreditError, credit
from schemas.credits import CreditRequest
from domain.einvoice import CREDIT_NOTE, from_invoice
from en16931_check import fatal
from test_domain_billing import customer
from test_einvoice import ADDR, SELLER, buyer_of, issued

D = Decimal
NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)


def cn(invoice, before=D(0), n=1, **req):
    request = CreditRequest(interactionId=invoice.interactionId, invoiceNumber=invoice.invoiceNumber,
                            reason="Disputed call", **req)
    return credit(invoice, request, before, f"CN03-{n:06d}", "CN03", date(2026, 12, 3), NOW)


def test_a_full_credit_note_mirrors_the_invoice_at_its_own_rates():
    inv = issued(customer(currency="EUR", locale="de", postalAddress=ADDR["DE"]))
    note = cn(inv)
    assert (note.subtotal, note.taxTotal, note.total) == (inv.subtotal, inv.taxTotal, inv.total)
    assert [t.rate for t in note.taxes] == [t.rate for t in inv.taxes] == [D("0.19")]
    assert note.invoiceNumber == inv.invoiceNumber and note.invoiceIssueDate == inv.issueDate
    # the rates are the invoice's, whatever the rate card says today: an invoice issued at 16 % credits at 16 %
    old_rate = inv.model_copy(update={"taxes": [inv.taxes[0].model_copy(update={"rate": D("0.16")})]})
    assert cn(old_rate).taxes[0].rate == D("0.16") and cn(old_rate).taxTotal == round(inv.subtotal * D("0.16"), 2)


def test_partial_credits_by_line_and_by_amount_never_exceed_the_invoice():
    inv = issued(customer(currency="EUR", locale="de", postalAddress=ADDR["DE"]))  # tiered: several lines
    assert len(inv.lineItems) >= 2
    first = cn(inv, lines=[1])
    assert first.lineItems == [inv.lineItems[0]] and first.total < inv.total
    second = cn(inv, before=first.total, n=2, amount=D("5.00"))
    assert second.subtotal == D("5.00") and second.taxTotal == D("0.95") and second.total == D("5.95")
    rest = cn(inv, before=first.total + second.total, n=3)  # "the rest"
    assert first.total + second.total + rest.total <= inv.total
    assert inv.total - (first.total + second.total + rest.total) < D("0.02")  # at most the tax's rounding
    with pytest.raises(CreditError) as e:
        cn(inv, before=first.total, n=4, amount=inv.subtotal)
    assert e.value.reason == "EXCEEDS_INVOICE"
    with pytest.raises(CreditError, match="ALREADY_CREDITED"):
        cn(inv, before=inv.total)
    with pytest.raises(CreditError, match="NO_SUCH_LINE"):
        cn(inv, lines=[99])


def test_the_same_request_gives_the_same_idempotency_key_and_a_given_key_wins():
    a = CreditRequest(interactionId="i-1", invoiceNumber="INV03-000001", reason="Disputed call", lines=[1])
    b = CreditRequest(interactionId="i-1", invoiceNumber="INV03-000001", reason="Disputed call", lines=[1],
                      actor="someone else")
    assert a.key() == b.key() and a.key().startswith("cn-")
    assert CreditRequest(interactionId="i-1", invoiceNumber="INV03-000001", reason="Other", lines=[1]).key() != a.key()
    assert CreditRequest(interactionId="i-1", invoiceNumber="X", reason="r",
                         idempotencyKey="erp-ticket-4711").key() == "erp-ticket-4711"
    with pytest.raises(ValidationError, match="lines or amount"):
        CreditRequest(interactionId="i-1", invoiceNumber="X", reason="r", lines=[1], amount=D("1"))
    with pytest.raises(ValidationError, match="interactionId"):
        CreditRequest(interactionId="i~1", invoiceNumber="X", reason="r")


@pytest.mark.parametrize("fields, req", [
    (dict(currency="EUR", locale="de-AT", taxId="ATU13585627", postalAddress=ADDR["AT"]), {}),  # reverse charge
    (dict(currency="EUR", locale="de", postalAddress=ADDR["DE"]), {"lines": [1]}),
    (dict(currency="JPY", locale="ja", name="山田太郎", postalAddress=ADDR["JP"]), {"amount": D("1000")}),
], ids=["full, reverse charge", "partial by line", "partial by amount, JPY"])
def test_credit_notes_are_valid_en16931_credit_notes_referring_to_their_invoice(fields, req):
    cust = customer(**fields)
    inv = issued(cust)
    note = cn(inv, **req)
    as_invoice = note.as_invoice(inv)
    assert as_invoice.is_credit_note and as_invoice.record_id == f"{inv.interactionId}~{note.creditNumber}"
    doc = from_invoice(as_invoice, SELLER, buyer_of(cust, inv))  # type 381 and BG-3 from the note itself
    assert doc.type_code == CREDIT_NOTE and doc.preceding == (inv.invoiceNumber, inv.issueDate)
    for xml in (ubl(doc), cii(doc)):
        assert fatal(xml) == [], [(f.rule, f.text) for f in fatal(xml)]
    assert b"<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>" in ubl(doc)
    assert inv.invoiceNumber.encode() in ubl(doc) and note.creditNumber.encode() in ubl(doc)
    assert note.reverseCharge == inv.reverseCharge
