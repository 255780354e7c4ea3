"""Money: Decimal amounts rounded half-up to the currency's minor unit (ISO 4217)."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 active codes; exponents that are not 2 are listed below.
_CODES = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
BWP BYN BZD CAD CDF CHF CLF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS
TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG
XOF XPF YER ZAR ZMW ZWG
""".split()
_EXPONENT = {
    **{c: 0 for c in "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()},
    **{c: 3 for c in "BHD IQD JOD KWD LYD OMR TND".split()},
    **{c: 4 for c in "CLF UYW".split()},
}
CURRENCIES = frozenset(_CODES)


class MoneyError(ValueError):
    pass


def check_currency(code: str | None) -> str:
    if not code or code.upper() not in CURRENCIES:
        raise MoneyError(f"unknown currency code {code!r} (ISO 4217 expected)")
    return code.upper()


def minor_unit(currency: str) -> int:
    """Decimal places of the currency: JPY 0, USD 2, KWD 3."""
    return _EXPONENT.get(check_currency(currency), 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the minor unit; the one rounding rule for every amount callbill shows."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def parse_amount(value: object) -> Decimal:
    """A Decimal from a string or int; floats are refused (they are not exact)."""
    if isinstance(value, float):
        raise MoneyError(f"amount {value!r} is a float; write it as a string, e.g. \"{value}\"")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise MoneyError(f"amount {value!r} is not a number")
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise MoneyError(f"amount {value!r} is not a number") from None
    if not d.is_finite():
        raise MoneyError(f"amount {value!r} is not finite")
    return d


def fits_currency(amount: Decimal, currency: str) -> bool:
    """True when the amount has no more decimals than the currency allows."""
    return amount == amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)
