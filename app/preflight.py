"""The checks a worker passes before it starts, whichever way it is started.

`callbill worker` and `faust -A app worker` (app/main.py) both load the settings through
here: invalid settings, an unknown variable, a rate card, link key or invoice template that
cannot work are refused with one line naming what is wrong (never a value, never a
traceback), and the process exits 2 before any Kafka client exists.
"""
from __future__ import annotations

import sys

from runtime.settings import Settings, get_settings


def checked_settings() -> Settings:
    """The settings, every file they name read and validated; ValueError names the problem."""
    from pydantic import ValidationError

    from adapters.pdf import InvoiceRenderer, RenderError
    from domain.pricing import load_rate_card
    from schemas.errors import summary

    try:
        s = get_settings()
    except ValidationError as e:
        raise ValueError(f"invalid settings: {summary(e)}") from None
    load_rate_card(s.rate_card)  # RateCardError is a ValueError naming the file and the mistake
    if s.wrapup_codes_file:
        from adapters.genesys import WrapupCodes

        try:
            WrapupCodes.from_file(s.wrapup_codes_file)
        except ValueError as e:
            raise ValueError(f"CALLBILL_WRAPUP_CODES_FILE: {e}") from None
    if s.seller_logo:
        try:
            head = s.seller_logo.read_bytes()[:4]
        except OSError as e:
            raise ValueError(f"CALLBILL_SELLER_LOGO: {s.seller_logo} cannot be read ({type(e).__name__})") from None
        if not (head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff")):
            raise ValueError(f"CALLBILL_SELLER_LOGO: {s.seller_logo} is not a PNG or JPEG image")
    if s.kafka_ssl_cafile:
        import ssl

        try:
            ssl.create_default_context(cafile=str(s.kafka_ssl_cafile))
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"CALLBILL_KAFKA_SSL_CAFILE: {s.kafka_ssl_cafile} is not a readable CA bundle "
                             f"({type(e).__name__})") from None
    if s.operators_file:
        from adapters.operators import Accounts, AccountsError

        if not s.operators_file.parent.is_dir():
            raise ValueError(f"CALLBILL_OPERATORS_FILE: {s.operators_file.parent} is not a directory")
        try:
            Accounts.load(s.operators_file)  # absent is fine: `callbill operators add` creates it
        except AccountsError as e:
            raise ValueError(f"CALLBILL_OPERATORS_FILE: {e}") from None
    s.link_key  # noqa: B018 - refuses to start without a key for document links
    from adapters.catalogs import CatalogError, Catalogs

    try:
        catalogs = Catalogs(default_locale=s.default_locale, override_dir=s.catalog_dir).load()
    except CatalogError as e:
        raise ValueError(f"CALLBILL_CATALOG_DIR: {e}" if s.catalog_dir else str(e)) from None
    try:
        renderer = InvoiceRenderer(s.invoice_template)
        for lang in sorted(catalogs.names):  # the template with every language's texts (and Arabic's direction)
            renderer.check(catalogs.localizer(lang))
    except RenderError as e:
        raise ValueError(f"CALLBILL_INVOICE_TEMPLATE: {e}") from None
    return s


def settings_or_exit() -> Settings:
    try:
        return checked_settings()
    except ValueError as e:
        print(f"callbill worker: {e}", file=sys.stderr)
        raise SystemExit(2) from None
