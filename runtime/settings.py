"""The one settings object: every knob is a `CALLBILL_*` environment variable.

`.env.example` lists each of them with its default; keep the two in step
(`tests/unit/test_settings.py` checks it).
"""
from __future__ import annotations

import difflib
import logging
import os
import re
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.provider_auth import AWS_CERT_HOSTS, sendgrid_public_key


# renamed for what they drive; the old names are read until the next release (CHANGELOG.md)
DEPRECATED = {"CALLBILL_ERP_BACKOFF_BASE": "CALLBILL_BACKOFF_BASE", "CALLBILL_ERP_BACKOFF_CAP": "CALLBILL_BACKOFF_CAP",
              "CALLBILL_BILLING_BATCH_WINDOW": "CALLBILL_BATCH_WINDOW"}


DEMO_SELLER = "Callbill Demo Services Ltd"
DEMO_ADDRESS = "1 Example Street"
SAMPLE_RATE_CARD = "samples/rate-card.yaml"
# RFC 2606's reserved names: example.com/.net/.org and the .example top-level domain
_EXAMPLE_DOMAIN = re.compile(r"(?:^|[@.\s/])example(?:\.(?:com|net|org))?(?=$|[\s/>:])", re.I)


def demo_values(s: "Settings") -> list[str]:
    """What production refuses because it is the demo's, not the seller's: an invoice with
    the sample prices, the demo company or an example.* address is a wrong invoice."""
    problems = []
    if s.rate_card.as_posix().endswith(SAMPLE_RATE_CARD):
        problems.append(f"CALLBILL_RATE_CARD is the sample rate card ({SAMPLE_RATE_CARD}): name your own")
    if s.seller_name.strip() == DEMO_SELLER:
        problems.append("CALLBILL_SELLER_NAME is the demo seller's: set your legal name")
    if DEMO_ADDRESS.lower() in s.seller_address.lower():
        problems.append("CALLBILL_SELLER_ADDRESS is the demo address: set yours")
    if not (s.seller_tax_id or "").strip():
        problems.append("CALLBILL_SELLER_TAX_ID is required in production (an invoice names the seller's tax id)")
    for name in ("mail_from", "seller_contact"):
        value = getattr(s, name) or ""
        if _EXAMPLE_DOMAIN.search(value):
            problems.append(f"CALLBILL_{name.upper()} is at an example domain: use one you send from")
    return problems


def unsafe_directory(path: Path) -> str | None:
    """Why a directory must not be one callbill moves files out of, or None if it may be."""
    try:
        p = path.expanduser().resolve()
    except OSError:
        return None
    if p == Path(p.anchor):
        return "the file system root"
    if p == Path.cwd().resolve():
        return "the working directory"
    if p == Path.home().resolve():
        return "a home directory"
    if any((p / marker).exists() for marker in (".git", "pyproject.toml")):
        return "a source checkout"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLBILL_", env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True,
        # `CALLBILL_X=` (as in a copy of .env.example) means unset, not "": an empty path
        # would be the working directory (docs/configuration.md)
        env_ignore_empty=True,
    )

    # --- Kafka and the Faust app -------------------------------------------------
    env: Literal["development", "production"] = Field("development", description="production refuses unsafe settings at start-up: replication below 3, the memory store, missing secrets, Kafka without TLS, and the demo's values (the sample rate card, the demo seller and address, example.* mail and contact addresses, no seller tax id).")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field("PLAINTEXT", description="How every callbill Kafka client connects (SASL_SSL for a managed cluster).")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field("PLAIN", description="SASL mechanism (with SASL_SSL or SASL_PLAINTEXT).")
    kafka_sasl_username: str | None = Field(None, description="SASL user name (an API key on managed clusters).")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (an API secret on managed clusters).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for the brokers' certificates (unset: the system's trusted CAs).")
    app_id: str = Field("callbill", description="Faust app id: the consumer group and the prefix of table changelogs.")
    topic_prefix: str = Field("", description="Prefix for every topic name (isolates tests and tenants sharing a cluster).")
    topic_partitions: int = Field(8, ge=1, description="Partitions of the pipeline topics (the unit of parallelism).")
    topic_replication: int = Field(1, ge=1, description="Replication factor for topics callbill creates (3 in production).")
    store: str = Field("memory://", description="Table store: memory:// (tests, demo) or rocksdb:// (production).")
    rocksdb_write_buffer: int = Field(4 * 1024 * 1024, ge=1024 * 1024, description="rocksdb:// only: bytes of one memtable of each table partition's database (two at most before a flush; all of them within CALLBILL_ROCKSDB_MEMORY). Faust's default, 64 MiB and three of them, let a worker's memory grow by gigabytes over a busy hour (docs/performance.md).")
    rocksdb_memory: int = Field(32 * 1024 * 1024, ge=8 * 1024 * 1024, description="rocksdb:// only: bytes RocksDB may hold for the whole worker, every table partition together: one block cache they share, which their memtables are charged to (half of it at most). Per-database caches (Faust's default: 2 GiB each) kept filling, one database after another, in a soak (docs/performance.md); the shared cache fills up to this size and then stays there.")
    data_dir: Path = Field(Path("var/worker"), description="Faust data directory (RocksDB files live here).")
    session_timeout: float = Field(30.0, ge=6, description="Seconds before the group gives a silent (crashed) worker's partitions to others.")
    web_port: int = Field(6066, description="Port of the worker's web server (bridge, health, metrics).")
    web_host: str = Field("127.0.0.1", description="Address the worker's web server binds to.")
    log_level: str = Field("info", description="Log level of the worker.")
    web_stats: bool = Field(False, description="Serve Faust's stats pages (/ and /assignment/) to signed-in operators and client tokens (any role).")

    # --- Bridge ------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(None, description="Shared secret for X-Callbill-Signature HMAC or Bearer auth. Unset: the bridge refuses every event (401).")
    admin_token: SecretStr | None = Field(None, description="Development only: one bearer token for the review API and stats page, recorded as admin-token (production refuses it; give each client its own token with `callbill operators token`).")
    operators_file: Path | None = Field(None, description="The operators file: named accounts (argon2id password hashes) with a role, viewer or operator, and client tokens for the API; written by `callbill operators`, re-read when it changes. Unset: only CALLBILL_ADMIN_TOKEN opens the API and nobody can sign in.")
    session_hours: float = Field(8.0, gt=0, le=24 * 7, description="Hours a review-page session lasts from sign-in; it ends earlier at sign-out or `callbill operators revoke`.")
    login_attempts: int = Field(5, ge=1, description="Failed sign-ins allowed per name and per client address within CALLBILL_LOGIN_WINDOW before further attempts are refused (429).")
    login_window: float = Field(300.0, gt=0, description="Seconds over which failed sign-ins are counted (and a refused client waits).")
    api_token: SecretStr | None = Field(None, description="The client token `callbill review` sends (from `callbill operators token NAME`); the worker does not use it.")
    max_body_bytes: int = Field(65536, ge=1024, description="Largest accepted request body at the bridge (413 above).")
    bridge_ack_timeout: float = Field(5.0, gt=0, description="Seconds the bridge waits for Kafka to acknowledge before answering 503.")
    bridge_retry_after: int = Field(5, ge=1, description="Retry-After seconds in the bridge's 503 answers.")

    # --- Intake ------------------------------------------------------------------
    billable_codes: str = Field("Billable Service", description="Comma-separated wrap-up code names (or ids) that are billable; compared case-insensitively.")

    # --- Assembly of Genesys detail events ---------------------------------------
    assembly_wait: float = Field(600.0, gt=0, description="Seconds a conversation may stay incomplete before it is completed from the Analytics API or sent to review.")
    assembly_sweep_interval: float = Field(30.0, gt=0, description="Seconds between sweeps of the pending table for conversations that waited too long.")
    assembly_done_ttl: float = Field(3600.0, gt=0, description="Seconds a finished conversation is remembered, so late events are recognised and ignored.")
    wrapup_codes_file: Path | None = Field(None, description="Wrap-up code names for offline use, looked up before the API: a JSON object (id -> name), the JSON that GET /api/v2/routing/wrapupcodes?pageSize=500 answers (saved as it is), or CSV (id,name). Checked at start-up.")
    wrapup_cache_ttl: float = Field(3600.0, gt=0, description="Seconds a wrap-up code name fetched from Genesys is cached.")
    reconcile_hours: float = Field(6.0, ge=0, description="The leader backfills this many past hours from the Analytics API on every reconciliation; 0 turns it off.")
    reconcile_interval: float = Field(3600.0, gt=0, description="Seconds between reconciliations (leader only, needs Genesys credentials).")
    genesys_api_url: str | None = Field(None, description="Override of the Genesys API base URL (default from the region).")
    genesys_login_url: str | None = Field(None, description="Override of the Genesys login (OAuth) base URL (default from the region).")

    # --- Billing -----------------------------------------------------------------
    rate_card: Path = Field(Path("samples/rate-card.yaml"), description="Rate card (YAML or JSON): prices per wrap-up code/service type and currency, taxes per jurisdiction, payment terms. Checked at start-up.")
    default_timezone: str | None = Field(None, description="IANA timezone for customers whose record has none; unset: such invoices go to review (NO_TIMEZONE).")
    invoice_prefix: str = Field("INV", pattern=r"^[A-Z][A-Z0-9]{0,7}$", description="Series prefix of invoice numbers callbill issues (no ERP): INV03-000123 is number 123 of partition 3's series.")
    credit_prefix: str = Field("CN", pattern=r"^[A-Z][A-Z0-9]{0,7}$", description="Series prefix of credit note numbers callbill issues (no ERP): CN03-000012 is credit note 12 of partition 3's series.")
    erp_url: str | None = Field(None, description="ERP base URL; unset: the built-in rate card issues invoices.")
    erp_token: SecretStr | None = Field(None, description="Bearer token for the ERP API.")
    erp_timeout: float = Field(5.0, gt=0, description="Seconds one ERP request may take (a timeout is retried).")
    erp_concurrency: int = Field(64, ge=1, description="ERP requests in flight at once per worker.")
    erp_attempts: int = Field(4, ge=1, description="Attempts per ERP request inside the billing agent before the item is parked on callbill.retry.")
    backoff_base: float = Field(0.2, gt=0, validation_alias=AliasChoices("CALLBILL_BACKOFF_BASE", "CALLBILL_ERP_BACKOFF_BASE"), description="Base of the backoff between attempts at the ERP, the object store and the mail transport (full jitter, doubling per attempt), in seconds. Was CALLBILL_ERP_BACKOFF_BASE (still read, deprecated).")
    backoff_cap: float = Field(5.0, gt=0, validation_alias=AliasChoices("CALLBILL_BACKOFF_CAP", "CALLBILL_ERP_BACKOFF_CAP"), description="Cap of one such backoff delay, in seconds. Was CALLBILL_ERP_BACKOFF_CAP (still read, deprecated).")
    billing_batch: int = Field(200, ge=1, description="Interactions the billing agent takes at once (their ERP calls run concurrently).")
    batch_window: float = Field(0.02, gt=0, validation_alias=AliasChoices("CALLBILL_BATCH_WINDOW", "CALLBILL_BILLING_BATCH_WINDOW"), description="Seconds the billing, documents and delivery agents wait to fill a batch. Was CALLBILL_BILLING_BATCH_WINDOW (still read, deprecated).")
    retry_base_delay: float = Field(2.0, gt=0, description="Least delay of an item parked on callbill.retry, in seconds.")
    retry_max_delay: float = Field(120.0, gt=0, description="Cap of the (doubling, jittered) delay of parked items, in seconds.")

    # --- Documents ---------------------------------------------------------------
    public_url: str = Field("http://127.0.0.1:6066", description="Base URL customers reach the worker's web server at: file-store links and the link-renewal endpoint are built on it.")
    link_ttl: float = Field(86400.0, gt=0, description="Seconds a document link stays valid (24 h); the renew link in the email issues a fresh one.")
    link_secret: SecretStr | None = Field(None, description="Key that signs document links and renew tokens; unset: derived from CALLBILL_WEBHOOK_SECRET (set it in production, and rotate both together).")
    s3_sse: str = Field("AES256", description="Server-side encryption requested on S3 PUTs (none: no encryption requested); skipped with a warning where the server does not support it.")
    max_poll_records: int = Field(200, ge=1, description="Records one fetch hands to the agents at the most: Faust pushes a fetch through one queue after another, so a large fetch for a busy stage (PDFs) holds up every other stage until it is through.")
    fetch_max_bytes: int = Field(262144, ge=1024, description="Bytes fetched per partition at a time (Faust's default, 4 MiB, is minutes of PDF work on one partition).")
    render_processes: int = Field(1, ge=0, description="Child processes rendering invoice PDFs beside the event loop (a render is CPU work); 0: render in a thread of the worker.")
    documents_batch: int = Field(32, ge=1, description="Invoices the documents agent takes at once (rendered off the event loop, stored concurrently).")
    storage_attempts: int = Field(4, ge=1, description="Attempts per document store inside the documents agent before the invoice is parked on callbill.retry.")
    seller_name: str = Field("Callbill Demo Services Ltd", description="Seller's legal name on invoices.")
    seller_address: str = Field("1 Example Street|Springfield, IL 62701|United States", description="Seller's address on invoices, lines separated by |.")
    seller_country: str = Field("US", min_length=2, max_length=2, description="Seller's country (ISO 3166-1 alpha-2): which tax law's content the invoice carries, the label of the seller's tax id, and whether a buyer's EU VAT number is of another member state (reverse charge).")
    seller_tax_id: str | None = Field(None, description="Seller's VAT / tax id printed on invoices, checked for CALLBILL_SELLER_COUNTRY at start-up (EU: the VAT number with its check digits; JP: the registration number T + 13 digits; GB, CH, AU, CA: their formats).")
    default_locale: str = Field("en", description="The language and formats for a customer whose locale has no catalog (or who has none): a BCP 47 tag like en, de-DE. Fallback: the customer's locale, its language, this, en (docs/languages.md).")
    catalog_dir: Path | None = Field(None, description="A directory of gettext catalogs (<language>.po, like de.po or fr_CA.po) overriding callbill's texts for your brand; checked at start-up (every message id known, every placeholder kept).")
    einvoice_default: Literal["none", "ubl", "factur-x"] = Field("none", description="The e-invoice business customers (with a VAT number) get when their record does not say (customer.einvoice): none; ubl (UBL 2.1 beside the PDF, EN 16931, Peppol BIS ids); factur-x (the PDF itself as PDF/A-3 with its CII XML inside) (docs/einvoices.md).")
    vies: Literal["off", "on"] = Field("off", description="on: confirm a buyer's EU VAT number through VIES before a reverse-charge invoice (cached); off: format and check digits only.")
    vies_url: str = Field("https://ec.europa.eu/taxation_customs/vies/rest-api", description="The VIES REST API (GET {url}/ms/{country}/vat/{number}).")
    vies_timeout: float = Field(5.0, gt=0, description="Seconds a VIES question may take.")
    vies_cache_hours: float = Field(24.0, gt=0, description="Hours a VIES answer is reused for the same number.")
    vies_unavailable: Literal["charge_vat", "review"] = Field("review", description="When VIES cannot answer: charge_vat (invoice with VAT, no reverse charge) or review (VAT_ID_UNCONFIRMED).")
    seller_contact: str | None = Field("billing@callbill.example", description="Contact line on invoices (an email or phone for billing questions).")
    seller_logo: Path | None = Field(None, description="PNG/JPEG logo printed on invoices.")
    invoice_template: Path | None = Field(None, description="The invoice's layout: a typst file (start from adapters/templates/invoice.typ); compiled with a sample invoice at start-up. Default: the built-in one.")
    payment_instructions: str | None = Field(None, description="Payment instructions printed on invoices (bank details, payment link).")

    storage_url: str = Field("file://var/store", description="file://DIR or s3://bucket/prefix for invoice PDFs.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (e.g. http://127.0.0.1:8333 for SeaweedFS).")

    # --- Delivery ----------------------------------------------------------------
    email_transport: Literal["smtp", "genesys"] = Field("smtp", description="How invoice email leaves: smtp (CALLBILL_SMTP_URL) or genesys (agentless email API, needs Genesys credentials).")
    smtp_url: str = Field("smtp://127.0.0.1:2525", description="SMTP server: smtp://host:port (STARTTLS when offered; ?starttls=require|off), smtps://host:port (implicit TLS); user:password@ and ?ca=/path.pem allowed.")
    smtp_username: str | None = Field(None, description="SMTP login (instead of user@ in the URL).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (instead of :password@ in the URL).")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds one SMTP command may take.")
    smtp_connections: int = Field(4, ge=1, description="SMTP connections kept open and reused per worker.")
    mail_from: str = Field("invoices@callbill.example", description="From address of invoice mail (its domain also names the Message-IDs).")
    mail_from_name: str = Field("Billing", description="Display name of the From address.")
    mail_subject: str | None = Field(None, description="One subject template for every language ($invoiceNumber and $seller only; special characters removed, at most 78 characters). Unset: the catalog's subject in the customer's language (override it per language with CALLBILL_CATALOG_DIR).")
    sms_from: str | None = Field(None, description="Genesys SMS number (E.164) invoices are texted from; unset: no SMS, No Email customers get postal mail.")
    sms_default_region: str = Field("US", min_length=2, max_length=2, description="Country assumed for phone numbers written without +country code, when the customer has no address country.")
    genesys_send_rate: float = Field(300.0, gt=0, description="Agentless email/SMS sends per minute per worker (Genesys allows 300 per minute; divide by the number of workers).")
    email_dns_check: bool = Field(False, description="Check that an email domain accepts mail (DNS MX/A) before sending; results are cached.")
    email_dns_cache_ttl: float = Field(3600.0, gt=0, description="Seconds a DNS deliverability result is cached.")
    email_dns_servers: str = Field("", description="Name servers for the deliverability check (host or host:port, comma-separated); empty: the system's resolver.")
    redact_patterns: list[str] = Field(default_factory=list, description='Extra regular expressions masked in every outgoing text, as a JSON list (e.g. ["ACCT-[0-9]{8}"]).')
    ack_after_seconds: float = Field(30.0, ge=0, description="Send one 'Processing Received' message if the invoice is not delivered this many seconds after intake; 0 turns it off.")
    ack_deadline_seconds: float = Field(60.0, gt=0, description="An acknowledgement that cannot go out this many seconds after intake is given up (audited ACK_SKIPPED): late, it is worse than none.")
    soft_bounce_limit: int = Field(3, ge=1, description="Soft bounces (or 4xx refusals of a recipient) after which an address is treated as a hard bounce.")
    delivery_batch: int = Field(32, ge=1, description="Invoices the delivery agent takes at once (sent concurrently).")
    delivery_attempts: int = Field(4, ge=1, description="Send attempts inside the delivery agent before the invoice is parked on callbill.retry.")
    bounce_maildir: Path | None = Field(None, description="Directory of bounce messages (DSNs) to read; each file is published to callbill.bounces and moved to processed/.")
    bounce_poll_interval: float = Field(5.0, gt=0, description="Seconds between scans of CALLBILL_BOUNCE_MAILDIR.")
    sns_topic_arns: str = Field("", description="Comma-separated ARNs of the SNS topics whose SES bounce and complaint notifications POST /bounces/ses accepts (signed by SNS; subscriptions are confirmed). Empty: the endpoint is off.")
    sns_cert_hosts: str = Field(AWS_CERT_HOSTS, description="Regular expression of the hosts SNS signing certificates and subscription URLs may come from (https only).")
    sendgrid_public_key: str | None = Field(None, description="The SendGrid Event Webhook's verification key (base64, as SendGrid shows it, or PEM): POST /bounces/sendgrid accepts events signed with it. Unset: the endpoint is off.")
    sendgrid_max_age: float = Field(600.0, gt=0, description="Seconds a signed SendGrid post is accepted after its timestamp (an older one is a replay).")

    # --- Genesys Cloud -------------------------------------------------------------
    genesys_region: str = Field("mypurecloud.com", description="Genesys Cloud region domain (e.g. mypurecloud.ie).")
    genesys_client_id: str | None = Field(None, description="Genesys Cloud OAuth client id (client credentials).")
    genesys_client_secret: SecretStr | None = Field(None, description="Genesys Cloud OAuth client secret.")

    @model_validator(mode="after")
    def _deprecated_names(self) -> "Settings":
        """Old names still work for one release (pydantic-settings reads them as aliases,
        without saying which it found); say which name to use instead."""
        names = {k.upper() for k in os.environ}
        env_file = Path(".env")
        if env_file.is_file():
            names |= {line.split("=", 1)[0].strip().upper() for line in env_file.read_text().splitlines() if "=" in line}
        for old, new in DEPRECATED.items():
            if old in names:
                warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
                logging.getLogger("callbill.settings").warning("deprecated setting", extra={"reason": f"{old}: use {new}"})
        return self

    @field_validator("sns_cert_hosts")
    @classmethod
    def _host_pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"CALLBILL_SNS_CERT_HOSTS is not a regular expression ({e.msg})") from None
        return v

    @field_validator("sendgrid_public_key")
    @classmethod
    def _sendgrid_key(cls, v: str | None) -> str | None:
        if v:
            sendgrid_public_key(v)  # fail at start, not at the first event
        return v

    @property
    def sns_topic_set(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.sns_topic_arns.split(",") if a.strip())

    @field_validator("store")
    @classmethod
    def _known_store(cls, v: str) -> str:
        if not (v.startswith("memory://") or v.startswith("rocksdb://")):
            raise ValueError("CALLBILL_STORE must be memory:// or rocksdb://")
        return v

    @field_validator("mail_subject")
    @classmethod
    def _subject_fields(cls, v: str | None) -> str | None:
        from domain.messages import SUBJECT_FIELDS, check_template

        if v is None:
            return None
        return check_template(v, SUBJECT_FIELDS, "CALLBILL_MAIL_SUBJECT")

    @field_validator("redact_patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        from domain.redaction import Redactor

        Redactor.with_patterns(v)
        return v

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v:
            from zoneinfo import ZoneInfo

            try:
                ZoneInfo(v)
            except Exception:  # noqa: BLE001 - any failure means the name is unusable
                raise ValueError(f"CALLBILL_DEFAULT_TIMEZONE {v!r} is not an IANA timezone name") from None
        return v or None

    @field_validator("seller_country")
    @classmethod
    def _country(cls, v: str) -> str:
        import pycountry

        if pycountry.countries.get(alpha_2=v.upper()) is None:
            raise ValueError(f"CALLBILL_SELLER_COUNTRY {v!r} is not an ISO 3166-1 alpha-2 country code")
        return v.upper()

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        from domain.i18n import bcp47, parse_tag

        loc = parse_tag(v)
        if loc is None:
            raise ValueError(f"CALLBILL_DEFAULT_LOCALE {v!r} is not a locale (a BCP 47 tag like en or de-DE)")
        return bcp47(loc)

    @model_validator(mode="after")
    def _safe(self) -> "Settings":
        problems = []
        if self.credit_prefix == self.invoice_prefix:
            problems.append("CALLBILL_CREDIT_PREFIX must differ from CALLBILL_INVOICE_PREFIX (each has its own series)")
        if self.seller_tax_id:
            from domain.jurisdictions import TaxIdError, check_seller_tax_id

            try:
                check_seller_tax_id(self.seller_country, self.seller_tax_id)
            except TaxIdError as e:
                problems.append(f"CALLBILL_SELLER_TAX_ID: {e}")
        if self.bounce_maildir is not None and (why := unsafe_directory(self.bounce_maildir)):
            # the poller moves every file it finds there into processed/ or unreadable/
            problems.append(f"CALLBILL_BOUNCE_MAILDIR is {why}: name a directory that holds only bounce messages")
        if self.kafka_security_protocol.startswith("SASL") and not (self.kafka_sasl_username and self.kafka_sasl_password):
            problems.append("CALLBILL_KAFKA_SECURITY_PROTOCOL=SASL_* needs CALLBILL_KAFKA_SASL_USERNAME and _PASSWORD")
        if 0 < self.ack_after_seconds >= self.ack_deadline_seconds:
            problems.append(f"CALLBILL_ACK_AFTER_SECONDS={self.ack_after_seconds:g} must be below "
                            f"CALLBILL_ACK_DEADLINE_SECONDS={self.ack_deadline_seconds:g} (no acknowledgement could go out)")
        if self.env == "production":
            problems.extend(demo_values(self))
            if self.topic_replication < 3:
                problems.append(f"CALLBILL_TOPIC_REPLICATION={self.topic_replication}: production needs 3 or more "
                                "(one broker lost must lose nothing)")
            if not self.store.startswith("rocksdb://"):
                problems.append("CALLBILL_STORE must be rocksdb:// in production (memory:// rebuilds every table "
                                "from its changelog at each start)")
            for name in ("webhook_secret", "link_secret"):
                if not getattr(self, name):
                    problems.append(f"CALLBILL_{name.upper()} is required in production")
            if not self.operators_file:
                problems.append("CALLBILL_OPERATORS_FILE is required in production (named operators and client "
                                "tokens for the review pages and API)")
            if self.admin_token:
                problems.append("CALLBILL_ADMIN_TOKEN is refused in production: a shared token names no one in the "
                                "audit trail; sign operators in with CALLBILL_OPERATORS_FILE and give each API client "
                                "its own token (callbill operators token NAME)")
            if self.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
                problems.append(f"CALLBILL_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}: production "
                                "needs SSL or SASL_SSL (credentials and invoices must not cross the network in clear)")
            if self.public_url.startswith("http://"):
                problems.append("CALLBILL_PUBLIC_URL must be https:// in production (links carry signatures)")
            # an outside system that is configured needs its credentials from the secret store
            if self.erp_url and not self.erp_token:
                problems.append("CALLBILL_ERP_URL is set: production needs CALLBILL_ERP_TOKEN")
            if self.erp_url and self.erp_url.startswith("http://"):
                problems.append("CALLBILL_ERP_URL must be https:// in production")
            if bool(self.genesys_client_id) != bool(self.genesys_client_secret):
                problems.append("CALLBILL_GENESYS_CLIENT_ID and CALLBILL_GENESYS_CLIENT_SECRET go together")
            if self.email_transport == "smtp":
                from urllib.parse import urlsplit

                smtp = urlsplit(self.smtp_url)
                if (self.smtp_username or smtp.username) and not (self.smtp_password or smtp.password):
                    problems.append("CALLBILL_SMTP_USERNAME is set: production needs CALLBILL_SMTP_PASSWORD")
                if smtp.scheme == "smtp" and "starttls=require" not in smtp.query:
                    problems.append("CALLBILL_SMTP_URL: production needs smtps:// or smtp://…?starttls=require "
                                    "(invoice links must not cross the network in clear)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def link_key(self) -> bytes:
        import hashlib
        import hmac

        if self.link_secret:
            return self.link_secret.get_secret_value().encode()
        if not self.webhook_secret:
            raise ValueError("set CALLBILL_LINK_SECRET (or CALLBILL_WEBHOOK_SECRET) to sign document links")
        base = self.webhook_secret.get_secret_value()
        return hmac.new(base.encode(), b"callbill document links", hashlib.sha256).digest()

    def table_store_options(self) -> dict:
        """The sizes every table's store is opened with: RocksDB's memory, bounded (Faust's
        defaults are sized for one large table, not three tables times every partition). The
        shared cache itself is made by the composition root (runtime/rocksdb_memory.py)."""
        if not self.store.startswith("rocksdb://"):
            return {}
        return {"write_buffer_size": self.rocksdb_write_buffer, "max_write_buffer_number": 2,
                "block_cache_size": self.rocksdb_memory}

    @property
    def billable_code_set(self) -> frozenset[str]:
        return frozenset(c.strip().casefold() for c in self.billable_codes.split(",") if c.strip())

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{h.strip()}" for h in self.kafka_bootstrap.split(",") if h.strip())


# read by the development tools (devtools/devstack.py), not by the worker
TOOL_VARIABLES = frozenset({"CALLBILL_CACHE_DIR", "CALLBILL_KAFKA_CDS", "CALLBILL_S3_BUCKET"})
SECRETS_DIR = "CALLBILL_SECRETS_DIR"  # read by get_settings, before the settings themselves


def known_variables() -> set[str]:
    names = set(TOOL_VARIABLES) | {SECRETS_DIR}
    for name, f in Settings.model_fields.items():
        names.add(f"CALLBILL_{name.upper()}")
        alias = f.validation_alias
        names.update(str(c) for c in getattr(alias, "choices", [alias] if alias else []))
    return names


def unknown_variables(names: Iterable[str]) -> list[str]:
    """A line per CALLBILL_* name that no setting reads: a typo or a leftover is refused, not
    ignored (an ignored CALLBILL_ERP_TOKN would run the worker without its ERP token)."""
    known = known_variables()
    out = []
    for name in sorted(set(names)):
        if name.startswith("CALLBILL_") and name not in known and not name.startswith("CALLBILL_DEV_"):
            close = difflib.get_close_matches(name[9:], sorted(k[9:] for k in known), n=1, cutoff=0.75)
            out.append(f"{name} is not a setting" + (f"; did you mean CALLBILL_{close[0]}?" if close else
                                                     " (docs/configuration.md lists them)"))
    return out


def secrets_dir() -> Path | None:
    """Where settings may come from as files, one per setting named like its variable
    (`CALLBILL_ERP_TOKEN`, as Docker and Kubernetes mount secrets): CALLBILL_SECRETS_DIR,
    else /run/secrets when it exists. A named directory that is missing is refused: the
    worker would otherwise start without its secrets."""
    named = os.environ.get(SECRETS_DIR)
    if named:
        d = Path(named)
        if not d.is_dir():
            raise ValueError(f"{SECRETS_DIR}: {d} is not a directory")
        return d
    d = Path("/run/secrets")
    return d if d.is_dir() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The worker's and the commands' settings: the environment, ./.env and the secrets
    directory (in that order of precedence), every CALLBILL_* name in them known."""
    names = set(os.environ)
    env_file = Path(".env")
    if env_file.is_file():
        from dotenv import dotenv_values

        names |= set(dotenv_values(env_file))
    secrets = secrets_dir()
    if secrets is not None:
        names |= {p.name.upper() for p in secrets.iterdir() if p.name.upper().startswith("CALLBILL_") and p.is_file()}
    if problems := unknown_variables(names):
        raise ValueError("; ".join(problems))
    return Settings(_secrets_dir=secrets)
