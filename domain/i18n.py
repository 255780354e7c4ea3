"""A customer's language and formats: which catalog speaks to them, and how amounts and dates read.

Formats come from CLDR through babel, never by hand: "1.234,56 €" for de, "€1,234.56" for
en-IE, "￥17,600" for ja. Amounts stay Decimal until here and are shown with exactly the
digits the domain rounded them to (money.py, ISO 4217), so formatting never rounds.
Digits are Latin in every locale (babel's default numbering system; an Arabic invoice
reads "1,234.56 €"), so an amount reads the same in the PDF, the email and the ERP.

The fallback chain (docs/languages.md): the customer's exact locale (fr-CA), then its
language (fr), then the seller's default (CALLBILL_DEFAULT_LOCALE), then en. Texts and
formats travel together: a customer whose language has no catalog gets the default's
texts in the default's formats, never English words around German numbers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

from domain.money import round_money


def parse_tag(tag: str | None) -> Locale | None:
    """A babel Locale from a BCP 47 tag (de-AT) or a POSIX one (de_AT); None if it is none."""
    if not tag or not isinstance(tag, str):
        return None
    try:
        return Locale.parse(tag.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def bcp47(loc: Locale) -> str:
    return str(loc).replace("_", "-")


def choose(tag: str | None, available: Iterable[str], default: str) -> tuple[str, Locale]:
    """(catalog, format locale) for a customer's tag, along the fallback chain."""
    have = set(available)
    loc = parse_tag(tag)
    if loc is not None:
        for name in (str(loc), f"{loc.language}_{loc.territory}" if loc.territory else None, loc.language):
            if name and name in have:
                return name, loc
    fallback = parse_tag(default) or Locale("en")
    for name in (str(fallback), fallback.language):
        if name in have:
            return name, fallback
    return "en", Locale("en")


@dataclass(frozen=True)
class Localizer:
    """Everything a text builder needs for one customer: the catalog and the formats."""

    catalog: str  # the catalog's name: "de", "fr", "fr_CA"
    locale: Locale  # the formats' locale
    gettext: Callable[[str], str]

    @property
    def tag(self) -> str:
        return bcp47(self.locale)

    @property
    def language(self) -> str:
        return self.locale.language

    @property
    def rtl(self) -> bool:
        return self.locale.character_order == "right-to-left"

    def t(self, msgid: str, **values: object) -> str:
        text = self.gettext(msgid)
        return text.format(**values) if values else text

    def money(self, amount: Decimal, currency: str) -> str:
        """An amount with the currency's symbol, at the digits the domain rounded it to."""
        return format_currency(round_money(amount, currency), currency, locale=self.locale,
                               decimal_quantization=False)

    def unit_price(self, amount: Decimal, currency: str) -> str:
        """A unit price may be finer than the minor unit (0.035 per second): all its digits show."""
        return format_currency(amount, currency, locale=self.locale, decimal_quantization=False)

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale, decimal_quantization=False)

    def percent(self, rate: Decimal) -> str:
        return format_percent(rate, locale=self.locale, decimal_quantization=False)

    def date(self, day: dt.date, form: str = "medium") -> str:
        return format_date(day, form, locale=self.locale)

    def moment(self, at: dt.datetime, tz: str | None) -> str:
        """A date and time where the customer is, with the zone's short name (for link expiry)."""
        local = at.astimezone(ZoneInfo(tz) if tz else ZoneInfo("UTC"))
        return f"{format_datetime(local, 'medium', tzinfo=local.tzinfo, locale=self.locale)} {local.tzname() or 'UTC'}"


def english() -> Localizer:
    """English without a catalog (msgids are English): for pure tests and the sample invoice."""
    return Localizer("en", Locale("en"), lambda s: s)
