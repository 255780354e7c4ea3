"""The customer directory record on the compacted `crm.customers` topic (key: customerId).

Every field an invoice or a delivery is built from is checked here, in the model, so a
record produced straight to the topic is held to the same rules as one the importer
wrote: the well-kept types (pydantic-extra-types, email-validator, babel), with messages
that name the rule and never quote the value (it is personal data).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, WithJsonSchema,
    WrapValidator, model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_extra_types.country import CountryAlpha2
from pydantic_extra_types.currency_code import ISO4217
from pydantic_extra_types.phone_numbers import PhoneNumberValidator
from pydantic_extra_types.timezone_name import TimeZoneName


def _says(message: str) -> WrapValidator:
    """The type's own check, reported with `message` (theirs may be terse or quote the value)."""
    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except (ValidationError, ValueError):
            raise PydanticCustomError("invalid", message) from None
    return WrapValidator(wrap)


def _detail(message: str, value: str) -> str:
    """The library's explanation in parentheses, unless it quotes any part of the value."""
    low, v = message.casefold(), value.casefold()
    n = min(4, len(v))
    if n == 0 or any(v[i:i + n] in low for i in range(len(v) - n + 1)):
        return ""
    return f" ({message.rstrip('.')})"


def _email(value: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise PydanticCustomError("invalid", "not a valid address" + _detail(str(e), value)) from None


def _zone(value: str) -> str:
    # the host's own zone files are names too, but not ones an invoice can be dated in
    if value in ("localtime", "posixrules", "Factory"):
        raise ValueError(value)
    return value


def _locale(value: str) -> str:
    """A BCP 47 tag babel knows (en-US, ja, sr-Latn-RS; en_US is read too), written with hyphens."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(value.replace("-", "_"))).replace("_", "-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise PydanticCustomError("invalid", "not a locale (a BCP 47 tag like en-US or ja-JP)") from None


Country = Annotated[CountryAlpha2, _says("must be a 2-letter country code (ISO 3166-1 alpha-2)")]
Currency = Annotated[ISO4217, _says("must be an ISO 4217 currency code, like EUR")]
Zone = Annotated[TimeZoneName, AfterValidator(_zone), _says("not an IANA timezone name (like Europe/Berlin)"),
                 WithJsonSchema({"type": "string", "description": "an IANA timezone name, like Europe/Berlin"})]
Phone = Annotated[str, PhoneNumberValidator(number_format="E164"),
                  _says("not a valid phone number (give it with its +country code, or a postal address country)")]
Email = Annotated[str, AfterValidator(_email), WithJsonSchema({"type": "string", "format": "email"})]
LocaleTag = Annotated[str, AfterValidator(_locale),
                      WithJsonSchema({"type": "string", "description": "a BCP 47 language tag, like en-US"})]


class PostalAddress(BaseModel):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postalCode: str | None = None
    country: Country | None = None


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
    email: Email | None = None
    phone: Phone | None = None  # E.164; a national number is read in the postal address's country
    postalAddress: PostalAddress | None = None
    timezone: Zone | None = None
    currency: Currency | None = None
    locale: LocaleTag | None = None
    preferences: Preferences = Field(default_factory=Preferences)
    taxId: str | None = None  # a business customer's VAT/tax id (reverse charge where the rate card says so)
    einvoice: Literal["none", "ubl", "factur-x"] | None = None  # EN 16931: UBL beside the PDF, or the PDF as Factur-X; None: the seller's default
    paymentTermsDays: int | None = Field(None, ge=0, le=365)  # overrides the rate card's terms
    source: str | None = None  # "crm" (imported) or "genesys" (built from an external contact)

    @model_validator(mode="before")
    @classmethod
    def _national_phone(cls, data: Any) -> Any:
        """A number without its +country code is read in the postal address's country."""
        if not isinstance(data, dict):
            return data
        phone, address = data.get("phone"), data.get("postalAddress")
        country = address.get("country") if isinstance(address, dict) else getattr(address, "country", None)
        if isinstance(phone, str) and phone.strip() and not phone.lstrip().startswith("+") and isinstance(country, str):
            import phonenumbers

            try:
                number = phonenumbers.parse(phone, country.upper())
            except phonenumbers.NumberParseException:
                return data
            if phonenumbers.is_valid_number(number):
                data = {**data, "phone": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)}
        return data


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
    postal = dict(
        line1=addr.get("address1"), line2=addr.get("address2"), city=addr.get("city"),
        region=addr.get("state"), postalCode=addr.get("postalCode"), country=addr.get("countryCode"),
    ) if addr else None
    fields: dict[str, Any] = dict(customerId=f"genesys:{cid}", externalContactIds=[cid], name=name, email=email,
                                  phone=phone, postalAddress=postal, source="genesys")
    try:
        return Customer.model_validate(fields)
    except ValidationError as e:
        # Genesys does not check what its contacts hold: leave out what is not valid (the
        # channel that needed it then goes to review) rather than lose the conversation
        for err in e.errors(include_input=False):
            *path, name = err["loc"]
            holder = fields
            for part in path:
                holder = holder[part]
            holder[name] = None
        return Customer.model_validate(fields)
