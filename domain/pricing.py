"""The rate card and what an interaction costs: line items, taxes, totals.

Pure rules, no I/O except `load_rate_card`. Amounts are Decimal and every shown amount
is rounded half-up to the currency's minor unit: each line once, each tax line once
(on the subtotal), the total is their sum, so the invoice always adds up.
"""
from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.reasons import Refusal
from domain.i18n import Localizer, english
from domain.money import MoneyError, check_currency, fits_currency, parse_amount, round_money
from schemas.errors import summary
from schemas.invoices import LineItem, TaxAmount, Totals

UNIT_PRICE_EXTRA_DECIMALS = 4
Amount = Annotated[Decimal, BeforeValidator(parse_amount)]


class PricingError(Refusal):
    """An interaction that cannot be priced as it is; `reason` is the review reason code."""


class RateCardError(ValueError):
    """The rate card file is missing or invalid; raised at start-up."""


# --- the rate card file --------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tier(_Strict):
    upTo: int | None = Field(None, ge=1, description="last unit of this tier; None: no limit")
    unitPrice: Amount = Field(ge=0)


class Price(_Strict):
    unitPrice: Amount | None = Field(None, ge=0)
    tiers: list[Tier] | None = None
    minimum: Amount | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_of(self) -> "Price":
        if (self.unitPrice is None) == (self.tiers is None):
            raise ValueError("give either unitPrice or tiers")
        if self.tiers is not None:
            if not self.tiers:
                raise ValueError("tiers is empty")
            bounds = [t.upTo for t in self.tiers]
            if any(b is None for b in bounds[:-1]) or bounds[-1] is not None:
                raise ValueError("every tier but the last needs upTo, and the last must leave it open")
            closed = [b for b in bounds if b is not None]
            if closed != sorted(set(closed)):
                raise ValueError("tier upTo values must increase")
        return self

    def unit_prices(self) -> list[Decimal]:
        return ([self.unitPrice] if self.unitPrice is not None else []) + [t.unitPrice for t in self.tiers or []]


class Match(_Strict):
    wrapupCodes: list[str] = Field(default_factory=list)
    serviceTypes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> "Match":
        if not self.wrapupCodes and not self.serviceTypes:
            raise ValueError("match needs wrapupCodes or serviceTypes")
        return self

    def matches(self, wrapup_code: str | None, service_type: str | None) -> bool:
        def within(value: str | None, names: list[str]) -> bool:
            return not names or (value is not None and value.casefold() in {n.casefold() for n in names})
        return within(wrapup_code, self.wrapupCodes) and within(service_type, self.serviceTypes)


class Rate(_Strict):
    id: str = Field(min_length=1)
    match: Match
    description: str = Field(min_length=1, max_length=200)
    descriptions: dict[str, str] = Field(default_factory=dict, description="the description per language or locale (de, fr-CA); others get `description`")
    taxCategory: Literal["standard", "reduced"] = Field("standard", description="reduced: taxed by the jurisdiction's reducedLines (Japan's 8 %, a reduced VAT rate)")
    charge: Literal["flat", "per_started_minute", "per_second"]
    incrementSeconds: int = Field(1, ge=1, description="per_second: bill in started increments of this many seconds")
    priority: Literal["LOW", "NORMAL", "HIGH"] = "NORMAL"
    prices: dict[str, Price] = Field(min_length=1, description="currency -> price")

    @field_validator("prices")
    @classmethod
    def _currencies(cls, prices: dict[str, Price]) -> dict[str, Price]:
        out = {}
        for code, price in prices.items():
            try:
                cur = check_currency(code)
            except MoneyError as e:
                raise ValueError(str(e)) from None
            if price.minimum is not None and not fits_currency(price.minimum, cur):
                raise ValueError(f"{cur} minimum {price.minimum} has more decimals than {cur} allows")
            for unit_price in price.unit_prices():  # a rate may be finer than the minor unit (0.035/s)
                if not fits_currency(unit_price.scaleb(UNIT_PRICE_EXTRA_DECIMALS), cur):
                    raise ValueError(f"{cur} unit price {unit_price} has more than "
                                     f"{UNIT_PRICE_EXTRA_DECIMALS} decimals beyond what {cur} allows")
            out[cur] = price
        return out


class TaxRate(_Strict):
    name: str = Field(min_length=1)
    names: dict[str, str] = Field(default_factory=dict, description="the tax's name per language or locale")
    vatCategory: Literal["E"] | None = Field(None, description="E: an exempt supply (EN 16931 category E); needs exemptionReason")
    exemptionReason: str | None = Field(None, description="why the supply is exempt, as the e-invoice states it (BT-120)")

    @model_validator(mode="after")
    def _exempt(self) -> "TaxRate":
        if self.vatCategory == "E" and (self.rate != 0 or not self.exemptionReason):
            raise ValueError("an exempt tax (vatCategory: E) has rate 0 and an exemptionReason")
        return self
    rate: Amount = Field(ge=0, le=1, description="0.19 for 19 %")


class Jurisdiction(_Strict):
    lines: list[TaxRate] = Field(default_factory=list)
    reducedLines: list[TaxRate] | None = Field(None, description="the taxes of reduced-rate services (taxCategory: reduced)")
    reverseCharge: bool = Field(False, description="B2B customers with a valid EU VAT number of another member state than the seller's pay no VAT here; the buyer accounts for it (art. 196)")
    note: str | None = None
    notes: dict[str, str] = Field(default_factory=dict, description="the note per language or locale")

    def taxes_for(self, category: str) -> list[TaxRate]:
        if category == "reduced":
            if self.reducedLines is None:
                raise PricingError("NO_REDUCED_RATE", "a reduced-rate service, and the jurisdiction has no reducedLines")
            return self.reducedLines
        return self.lines


def localized(default: str, by_locale: dict[str, str], loc: Localizer) -> str:
    """The text for the customer's locale, then their language, then the default."""
    keys = {k.replace("_", "-").casefold(): v for k, v in by_locale.items()}
    return keys.get(loc.tag.casefold()) or keys.get(loc.language.casefold()) or default


class RateCard(_Strict):
    version: Literal[1] = 1
    paymentTermsDays: int = Field(30, ge=0, le=365)
    rates: list[Rate] = Field(min_length=1)
    taxes: dict[str, Jurisdiction] = Field(default_factory=dict, description="COUNTRY-REGION, COUNTRY or * -> taxes")

    @model_validator(mode="after")
    def _unique_ids(self) -> "RateCard":
        ids = [r.id for r in self.rates]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rate ids repeat: {', '.join(dupes)}")
        return self

    def rate_for(self, wrapup_code: str | None, service_type: str | None) -> Rate:
        for rate in self.rates:
            if rate.match.matches(wrapup_code, service_type):
                return rate
        raise PricingError("NO_RATE", "no rate in the rate card matches the interaction's wrap-up code and service type")

    def jurisdiction(self, country: str | None, region: str | None) -> tuple[str, Jurisdiction]:
        country = (country or "").strip().upper()
        region = (region or "").strip().upper()
        for key in (f"{country}-{region}" if country and region else None, country or None, "*"):
            if key and key in self.taxes:
                return key, self.taxes[key]
        raise PricingError("NO_TAX_JURISDICTION", f"the rate card has no taxes for country {country or '(none)'}")


class _DecimalYamlLoader:
    """YAML with floats read as Decimal, so `2.50` in the file is exactly 2.50."""

    @staticmethod
    def load(text: str) -> object:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_constructor("tag:yaml.org,2002:float",
                               lambda loader, node: Decimal(loader.construct_scalar(node)))
        return yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader subclass


def load_rate_card(path: Path | str) -> RateCard:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RateCardError(f"rate card {path}: cannot read it ({e.strerror or e})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, parse_float=Decimal)
        else:
            data = _DecimalYamlLoader.load(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one clear message
        raise RateCardError(f"rate card {path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {e}") from None
    try:
        return RateCard.model_validate(data)
    except ValidationError as e:
        raise RateCardError(f"rate card {path}: {summary(e)}") from None


# --- pricing ---------------------------------------------------------------------------

class Priced(Totals):
    rateId: str
    description: str
    priority: str
    notes: list[str] = Field(default_factory=list)
    reverseCharge: bool = Field(False, exclude_if=lambda v: not v)  # left out when false: older drafts read back unchanged


REVERSE_CHARGE_NOTE = "VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)."
ERP_AMOUNTS_NOTE = "Amounts as issued by the billing system."  # both are catalog messages, translated where shown
TIER_TEXT = {"minute": "{description} (minutes {first}–{last})", "second": "{description} (seconds {first}–{last})"}


def billed_units(rate: Rate, seconds: int) -> tuple[int, str]:
    if rate.charge == "flat":
        return 1, "service"
    if rate.charge == "per_started_minute":
        return math.ceil(seconds / 60), "minute"
    step = rate.incrementSeconds
    return math.ceil(seconds / step) * step, "second"


def _lines(rate: Rate, price: Price, units: int, unit: str, currency: str, loc: Localizer) -> list[LineItem]:
    description = localized(rate.description, rate.descriptions, loc)
    cat = rate.taxCategory
    if price.unitPrice is not None:
        return [LineItem(description=description, quantity=units, unit=unit, unitPrice=price.unitPrice,
                         amount=round_money(units * price.unitPrice, currency), taxCategory=cat)]
    lines, done = [], 0
    for tier in price.tiers or []:
        top = units if tier.upTo is None else min(units, tier.upTo)
        n = top - done
        if n <= 0:
            continue
        text = loc.t(TIER_TEXT[unit], description=description, first=done + 1, last=top) if unit in TIER_TEXT \
            else f"{description} ({done + 1}–{top})"
        lines.append(LineItem(description=text, quantity=n, unit=unit, unitPrice=tier.unitPrice,
                              amount=round_money(n * tier.unitPrice, currency), taxCategory=cat))
        done = top
    return lines


def price(card: RateCard, *, wrapup_code: str | None, service_type: str | None, duration_seconds: int,
          currency: str | None, country: str | None, region: str | None, reverse_charge: bool = False,
          loc: Localizer | None = None) -> Priced:
    """What the interaction costs the customer, in the customer's currency and language.

    Taxes are per rate: each tax line's base is the lines of its category (standard or
    reduced), so an invoice shows the tax per rate the way EU and Japanese law ask.
    """
    loc = loc or english()
    if not currency:
        raise PricingError("NO_CURRENCY", "the customer record has no currency")
    try:
        currency = check_currency(currency)
    except MoneyError as e:
        raise PricingError("INVALID_CURRENCY", str(e)) from None
    rate = card.rate_for(wrapup_code, service_type)
    if currency not in rate.prices:
        raise PricingError("NO_PRICE_FOR_CURRENCY", f"rate {rate.id} has no {currency} price")
    price_ = rate.prices[currency]
    units, unit = billed_units(rate, max(0, duration_seconds))
    lines = _lines(rate, price_, units, unit, currency, loc) if units else []
    subtotal = sum((li.amount for li in lines), Decimal(0))
    if price_.minimum is not None and subtotal < price_.minimum:
        lines.append(LineItem(description=loc.t("Minimum charge adjustment"), quantity=1, unit="adjustment",
                              unitPrice=price_.minimum - subtotal, amount=price_.minimum - subtotal,
                              taxCategory=rate.taxCategory))
        subtotal = price_.minimum
    subtotal = round_money(subtotal, currency)

    where, jur = card.jurisdiction(country, region)
    note = localized(jur.note, jur.notes, loc) if jur.note else None
    notes = [note] if note else []
    reverse = jur.reverseCharge and reverse_charge
    taxes = []
    for category in dict.fromkeys(li.taxCategory for li in lines) or ["standard"]:
        base = round_money(sum((li.amount for li in lines if li.taxCategory == category), Decimal(0)), currency)
        for t in jur.taxes_for(category):
            rate_ = Decimal(0) if reverse else t.rate
            taxes.append(TaxAmount(name=localized(t.name, t.names, loc), jurisdiction=where, rate=rate_, base=base,
                                   amount=round_money(base * rate_, currency),
                                   category=None if category == "standard" else category,
                                   vatCategory=t.vatCategory, exemptionReason=t.exemptionReason,
                                   note=REVERSE_CHARGE_NOTE if reverse else None))
    if reverse:
        notes.append(REVERSE_CHARGE_NOTE)
    tax_total = sum((t.amount for t in taxes), Decimal(0))
    return Priced(rateId=rate.id, description=localized(rate.description, rate.descriptions, loc), reverseCharge=reverse, priority=rate.priority, currency=currency,
                  lineItems=lines, subtotal=subtotal, taxes=taxes, taxTotal=round_money(tax_total, currency),
                  total=round_money(subtotal + tax_total, currency), notes=notes)
