"""Is a provider's notification really the provider's? Amazon SNS and SendGrid sign theirs.

SNS (carrying SES bounces and complaints) cannot send a bearer token or an HMAC header:
each message is signed with the key of a certificate it names by URL (SignatureVersion 1:
SHA1withRSA, 2: SHA256withRSA, over the message's fields in a fixed order). SendGrid's
Event Webhook signs timestamp + body with ECDSA P-256 (SHA-256) under a public key the
account shows. Pure checks: the certificate is fetched (and its URL vetted) by
adapters/sns.py; errors name what failed, never message content.
"""
from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


class SignatureError(Exception):
    """The notification is not proven to come from the provider (the text says why)."""


# the fields signed, in order (AWS: "Verifying the signatures of Amazon SNS messages")
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
AWS_CERT_HOSTS = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"


def sns_string_to_sign(msg: dict[str, Any]) -> bytes:
    kind = msg.get("Type")
    if kind not in _SIGNED:
        raise SignatureError("Type is not Notification, SubscriptionConfirmation or UnsubscribeConfirmation")
    parts = []
    for name in _SIGNED[kind]:
        value = msg.get(name)
        if value is None and name == "Subject":
            continue  # the only optional one
        if not isinstance(value, str):
            raise SignatureError(f"{name} is missing")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def verify_sns(msg: dict[str, Any], certificate_pem: bytes) -> None:
    """Raises SignatureError unless `msg` is signed by the certificate's key."""
    algorithm = _HASHES.get(str(msg.get("SignatureVersion")))
    if algorithm is None:
        raise SignatureError("SignatureVersion is not 1 or 2")
    try:
        signature = base64.b64decode(str(msg.get("Signature") or ""), validate=True)
    except ValueError:
        raise SignatureError("Signature is not base64") from None
    try:
        key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    except ValueError:
        raise SignatureError("the signing certificate is not a PEM certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the signing certificate has no RSA key")
    try:
        key.verify(signature, sns_string_to_sign(msg), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SignatureError("the signature does not match the message") from None


def sns_url_allowed(url: str, host_pattern: str = AWS_CERT_HOSTS, certificate: bool = False) -> bool:
    """An https URL on a host the pattern allows (AWS's own by default), without credentials;
    a certificate's is a .pem without a query."""
    try:
        u = urlsplit(url or "")
        u.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if u.scheme != "https" or not u.hostname or u.username or u.password or u.fragment:
        return False
    if certificate and (not u.path.endswith(".pem") or u.query):
        return False
    return re.fullmatch(host_pattern, u.hostname.lower()) is not None


def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid shows it (base64 of the DER SubjectPublicKeyInfo) or as PEM."""
    raw = text.strip()
    try:
        key = (serialization.load_pem_public_key(raw.encode()) if raw.startswith("-----")
               else serialization.load_der_public_key(base64.b64decode(raw)))
    except ValueError:
        raise ValueError("not an ECDSA public key (base64 DER, as SendGrid shows it, or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an ECDSA public key (base64 DER, as SendGrid shows it, or PEM)")
    return key


def verify_sendgrid(key: ec.EllipticCurvePublicKey, signature: str | None, timestamp: str | None, body: bytes,
                    max_age: float, now: datetime | None = None) -> None:
    """Raises SignatureError unless SendGrid signed timestamp + body, less than `max_age`
    seconds ago (an old, replayed post is refused even with a good signature)."""
    if not signature or not timestamp:
        raise SignatureError("missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp")
    try:
        sent = datetime.fromtimestamp(int(timestamp), timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise SignatureError("X-Twilio-Email-Event-Webhook-Timestamp is not a Unix time") from None
    age = ((now or datetime.now(timezone.utc)) - sent).total_seconds()
    if age > max_age or age < -300:
        raise SignatureError(f"the timestamp is {int(age)} s old (at most {int(max_age)} s is accepted)")
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        raise SignatureError("the signature does not match the body") from None
