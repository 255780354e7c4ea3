"""The customer directory record on the compacted `crm.customers` topic (key: customerId)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PostalAddress(BaseModel):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postalCode: str | None = None
    country: str | None = None


class Preferences(BaseModel):
    transactionalEmail: bool = True  # False is the guide's "No Email" flag
    marketingEmail: bool = False  # never consulted for invoices (transactional mail)
    sms: bool = True
    postal: bool = True


class Customer(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "customerId": "CUST-9876543", "name": "Jane Doe", "email": "jane@example.com", "phone": "+12175550123",
        "postalAddress": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701",
                          "country": "US"},
        "timezone": "America/Chicago", "currency": "USD", "locale": "en_US"}]})

    customerId: str = Field(min_length=1, max_length=128)
    externalContactIds: list[str] = Field(default_factory=list)
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    postalAddress: PostalAddress | None = None
    timezone: str | None = None
    currency: str | None = None
    locale: str | None = None
    preferences: Preferences = Field(default_factory=Preferences)
    taxId: str | None = None  # a business customer's VAT/tax id (reverse charge where the rate card says so)
    paymentTermsDays: int | None = Field(None, ge=0, le=365)  # overrides the rate card's terms
    source: str | None = None  # "crm" (imported) or "genesys" (built from an external contact)


def customer_from_genesys_contact(contact: dict[str, Any]) -> Customer:
    """A directory record from a Genesys external contact, for a contact the CRM lacks.

    Genesys contacts carry no timezone: it stays empty and billing applies
    CALLBILL_DEFAULT_TIMEZONE (or review) — see the README.
    """
    cid = contact["id"]
    name = " ".join(x for x in (contact.get("firstName"), contact.get("lastName")) if x) or None
    email = contact.get("workEmail") or contact.get("personalEmail") or contact.get("otherEmail")
    phone = None
    for key in ("cellPhone", "workPhone", "homePhone", "otherPhone"):
        number = contact.get(key) or {}
        phone = number.get("e164") or number.get("display")
        if phone:
            break
    addr = contact.get("address") or {}
    postal = PostalAddress(
        line1=addr.get("address1"), line2=addr.get("address2"), city=addr.get("city"),
        region=addr.get("state"), postalCode=addr.get("postalCode"), country=addr.get("countryCode"),
    ) if addr else None
    return Customer(customerId=f"genesys:{cid}", externalContactIds=[cid], name=name, email=email,
                    phone=phone, postalAddress=postal, source="genesys")
