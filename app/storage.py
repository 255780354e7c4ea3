"""The worker's object store, seller block and fonts, built once from settings."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from adapters.render_pool import RenderPool
from adapters.storage import FileStore, ObjectStore, store_from_url
from runtime.settings import get_settings
from domain.invoice_pdf import Seller

REPO = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def store() -> ObjectStore:
    s = get_settings()
    return store_from_url(s.storage_url, secret=s.link_key, public_url=s.public_url, endpoint_url=s.s3_endpoint_url,
                          sse=s.s3_sse or None)


def kind() -> str:
    return "file" if isinstance(store(), FileStore) else "s3"


@lru_cache(maxsize=1)
def seller() -> Seller:
    s = get_settings()
    return Seller(name=s.seller_name, address=tuple(x.strip() for x in s.seller_address.split("|") if x.strip()),
                  tax_id=s.seller_tax_id, contact=s.seller_contact, payment_instructions=s.payment_instructions,
                  logo=s.seller_logo)


def renew_url(number: str, key: str) -> str:
    from domain.links import renew_token

    s = get_settings()
    return f"{s.public_url.rstrip('/')}/invoices/{number}/link?token={renew_token(s.link_key, key)}"


@lru_cache(maxsize=1)
def renderer() -> RenderPool:
    return RenderPool(get_settings().render_processes)
