"""What tax law asks an invoice to say, per country, as data; and the tax-id checks behind it.

Sources (docs/languages.md#legal-content):
- EU: Council Directive 2006/112/EC (VAT Directive) art. 226 (invoice content; 226(11a):
  the words "Reverse charge"), art. 196 (the recipient is liable for VAT on B2B services
  from another member state), art. 44 (the place of supply is the customer's).
  VAT identification numbers: format and check digits per member state (python-stdnum,
  stdnum.eu.vat), and optionally VIES (the Commission's confirmation service).
- Japan: the qualified invoice system (適格請求書等保存方式, Consumption Tax Act art. 57-4,
  from 2023-10-01): the issuer's registration number (T + 13 digits, the corporate
  number's check digit), the applicable rates, and the tax per rate (10 %, 8 % reduced,
  reduced-rate items marked); yen have no minor unit.
- United Kingdom: VAT Notice 700 §16.3, "VAT registration number" (VAT Reg No.).
- Switzerland: MWSTG art. 26, the UID with MWST / TVA / IVA.
- Australia: A New Tax System (GST) Act 1999 s 29-70, the supplier's ABN.
- Canada: Excise Tax Act s 169(4), the supplier's GST/HST registration number (BN + RT).
"""
from __future__ import annotations

from dataclasses import dataclass

from stdnum import exceptions as stdnum_errors
from stdnum.eu import vat as eu_vat

from domain.reasons import Refusal

EU_MEMBER_STATES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split())
# VAT numbers use EL for Greece; Northern Ireland's XI is a member state for goods only
_VAT_PREFIX = {"GR": "EL"}


class TaxIdError(ValueError):
    """A tax id that is not valid for its country; the message names the rule, never the number."""


@dataclass(frozen=True)
class Label:
    """The registration label a country prints with a number, per invoice language."""

    default: str  # a message id of domain/texts.py, translated, or a fixed legal term
    by_language: tuple[tuple[str, str], ...] = ()
    translate: bool = True  # False: the country's own term, the same in every language

    def text(self, language: str, gettext) -> str:
        for lang, text in self.by_language:
            if lang == language:
                return text
        return gettext(self.default) if self.translate else self.default


LABELS: dict[str, Label] = {
    **{c: Label("VAT No.") for c in EU_MEMBER_STATES},
    "GB": Label("VAT Reg No.", translate=False),
    "CH": Label("VAT No. (MWST/TVA/IVA)", (("de", "MWST-Nr."), ("fr", "No TVA"), ("it", "N. IVA")), translate=False),
    "LI": Label("VAT No. (MWST)", (("de", "MWST-Nr."),), translate=False),
    "AU": Label("ABN", translate=False),
    "CA": Label("GST/HST No.", (("fr", "No de TPS/TVH"),), translate=False),
    "JP": Label("Registration No."),
}


def label(country: str | None, language: str, gettext) -> str:
    lab = LABELS.get((country or "").upper())
    return lab.text(language, gettext) if lab else gettext("Tax ID")


def _compact(number: str) -> str:
    return "".join(number.split()).replace(".", "").replace("-", "").upper()


def eu_vat_country(number: str) -> str | None:
    """The member state (ISO 3166 code) a valid EU VAT number belongs to, or None if it is not one."""
    compact = _compact(number)
    prefix = compact[:2]
    country = {v: k for k, v in _VAT_PREFIX.items()}.get(prefix, prefix)
    if country not in EU_MEMBER_STATES:
        return None
    try:
        eu_vat.validate(compact)
    except stdnum_errors.ValidationError:
        return None
    return country


def vat_prefix(country: str) -> str:
    return _VAT_PREFIX.get(country, country)


def japan_registration(number: str) -> str:
    """T + the 13-digit corporate number with a valid check digit (国税庁's rule); normalized."""
    from stdnum.jp import cn

    compact = _compact(number)
    if not compact.startswith("T") or not cn.is_valid(compact[1:]):
        raise TaxIdError("not a Japanese qualified invoice registration number (T followed by 13 digits "
                         "with a valid check digit)")
    return "T" + cn.compact(compact[1:])


def check_seller_tax_id(country: str, number: str) -> str:
    """The seller's own number, checked for its country at start-up; returns it as printed."""
    country = country.upper()
    if country == "JP":
        return japan_registration(number)
    if country in EU_MEMBER_STATES:
        owner = eu_vat_country(number)
        if owner != country:
            raise TaxIdError(f"not a valid VAT identification number of {country} "
                             f"(prefix {vat_prefix(country)}, with its check digits)")
        return _compact(number)
    checks = {"GB": "stdnum.gb.vat", "CH": "stdnum.ch.vat", "AU": "stdnum.au.abn", "CA": "stdnum.ca.bn"}
    if country in checks:
        import importlib

        mod = importlib.import_module(checks[country])
        candidate = number.strip()
        if country == "CA":  # GST/HST: the 9-digit business number + RT + 4 digits
            compact = _compact(candidate)
            ok = len(compact) == 15 and compact[9:11] == "RT" and compact[11:].isdigit() and mod.is_valid(compact[:9])
        else:
            ok = mod.is_valid(candidate)
        if not ok:
            raise TaxIdError(f"not a valid {LABELS[country].default} for {country}")
    return number.strip()


@dataclass(frozen=True)
class VatTreatment:
    reverse_charge: bool
    buyer_vat_id: str | None  # as printed (compact, with its prefix)
    buyer_vat_country: str | None


class VatIdProblem(Refusal):
    """A buyer's VAT id that stops the invoice; `reason` is the review reason."""


def vat_treatment(*, jurisdiction_reverse_charge: bool, buyer_tax_id: str | None,
                  seller_country: str | None) -> VatTreatment:
    """Whether a B2B invoice is reverse-charged (art. 196), before any VIES confirmation.

    Reverse charge needs a VAT number that is valid (format and check digits) and belongs to
    another member state than the seller's. An invalid one is a review (INVALID_VAT_ID), never
    a zero-rated invoice; a valid one of the seller's own state is a domestic sale with VAT.
    """
    tax_id = (buyer_tax_id or "").strip()
    if not tax_id:
        return VatTreatment(False, None, None)
    if not jurisdiction_reverse_charge:
        return VatTreatment(False, tax_id, None)
    country = eu_vat_country(tax_id)
    if country is None:
        raise VatIdProblem("INVALID_VAT_ID", "the customer's taxId is not a valid EU VAT identification number "
                                             "(format or check digits)")
    # a seller outside the EU is "not established" in the buyer's state either (art. 196)
    seller = (seller_country or "").upper()
    compact = _compact(tax_id)
    return VatTreatment(country != seller, compact, country)
