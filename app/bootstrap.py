"""The worker's outside systems, built from the one settings object: `build_services(settings)`.

One instance per worker, handed to the stages in their context (agents/context.py) and to
the web views; each client is made on first use (some need the event loop running), and
nothing here is a module-level singleton.
"""
from __future__ import annotations

from functools import cached_property

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from adapters.catalogs import Catalogs
from adapters.erp import ErpClient
from adapters.genesys import GenesysClient, WrapupCodes
from adapters.render_pool import RenderPool
from adapters.sns import SnsClient
from adapters.storage import FileStore, ObjectStore, store_from_url
from adapters.vies import Vies
from app.delivery import Transports
from domain.einvoice import Party, seller_party
from domain.invoice_pdf import Seller
from domain.links import renew_token
from domain.provider_auth import sendgrid_public_key
from domain.pricing import RateCard, load_rate_card
from runtime.settings import Settings


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # --- billing
    @cached_property
    def rate_card(self) -> RateCard:
        return load_rate_card(self.settings.rate_card)

    @cached_property
    def erp(self) -> ErpClient | None:
        s = self.settings
        if not s.erp_url:
            return None
        return ErpClient(s.erp_url, s.erp_token.get_secret_value() if s.erp_token else None,
                         timeout=s.erp_timeout, max_connections=s.erp_concurrency)

    @cached_property
    def vies(self) -> Vies | None:
        s = self.settings
        if s.vies != "on":
            return None
        return Vies(s.vies_url, s.vies_timeout, s.vies_cache_hours * 3600)

    # --- languages
    @cached_property
    def catalogs(self) -> Catalogs:
        s = self.settings
        return Catalogs(default_locale=s.default_locale, override_dir=s.catalog_dir).load()

    # --- Genesys
    @cached_property
    def genesys(self) -> GenesysClient | None:
        s = self.settings
        if not (s.genesys_client_id and s.genesys_client_secret):
            return None
        return GenesysClient(s.genesys_client_id, s.genesys_client_secret.get_secret_value(), region=s.genesys_region,
                             api_url=s.genesys_api_url, login_url=s.genesys_login_url)

    @cached_property
    def wrapup_codes(self) -> WrapupCodes:
        s = self.settings
        if s.wrapup_codes_file:
            return WrapupCodes.from_file(s.wrapup_codes_file, self.genesys, ttl=s.wrapup_cache_ttl)
        return WrapupCodes(self.genesys, ttl=s.wrapup_cache_ttl)

    # --- documents
    @cached_property
    def store(self) -> ObjectStore:
        s = self.settings
        return store_from_url(s.storage_url, secret=s.link_key, public_url=s.public_url,
                              endpoint_url=s.s3_endpoint_url, sse=None if s.s3_sse.strip().lower() in ("", "none", "off") else s.s3_sse)

    @property
    def store_kind(self) -> str:
        return "file" if isinstance(self.store, FileStore) else "s3"

    @cached_property
    def seller(self) -> Seller:
        s = self.settings
        return Seller(name=s.seller_name, address=tuple(x.strip() for x in s.seller_address.split("|") if x.strip()),
                      tax_id=s.seller_tax_id, contact=s.seller_contact, payment_instructions=s.payment_instructions,
                      logo=s.seller_logo, country=s.seller_country)

    @cached_property
    def einvoice_seller(self) -> Party:
        """The seller as EN 16931 names it (BG-4), from the same settings as the PDF's seller block."""
        s = self.seller
        return seller_party(s.name, s.address, s.country, s.tax_id, s.contact)

    def renew_url(self, number: str, key: str) -> str:
        s = self.settings
        return f"{s.public_url.rstrip('/')}/invoices/{number}/link?token={renew_token(s.link_key, key)}"

    # --- provider bounce notifications
    @cached_property
    def sns(self) -> SnsClient:
        return SnsClient(self.settings.sns_cert_hosts)

    @cached_property
    def sendgrid_key(self) -> EllipticCurvePublicKey | None:
        key = self.settings.sendgrid_public_key
        return sendgrid_public_key(key) if key else None

    @cached_property
    def renderer(self) -> RenderPool:
        s = self.settings
        return RenderPool(s.render_processes, s.invoice_template, (s.default_locale, s.catalog_dir))

    # --- delivery
    @cached_property
    def transports(self) -> Transports:
        return Transports(self.settings, lambda: self.genesys)


def build_services(settings: Settings) -> Services:
    return Services(settings)
