"""How every Kafka client of callbill connects: plaintext locally, TLS and SASL in production.

The Faust app (app/main.py) and the plain aiokafka clients (the bridge's producer, the
compacted-topic views, topic creation, the CLI commands) all take their security from
here, so one set of CALLBILL_KAFKA_* variables reaches a managed cluster.
"""
from __future__ import annotations

from typing import Any

from runtime.settings import get_settings


def ssl_context():
    from aiokafka.helpers import create_ssl_context

    s = get_settings()
    return create_ssl_context(cafile=str(s.kafka_ssl_cafile) if s.kafka_ssl_cafile else None)


def client_kwargs() -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / Consumer / AdminClient."""
    s = get_settings()
    proto = s.kafka_security_protocol
    kw: dict[str, Any] = {"security_protocol": proto}
    if proto in ("SSL", "SASL_SSL"):
        kw["ssl_context"] = ssl_context()
    if proto.startswith("SASL"):
        kw["sasl_mechanism"] = s.kafka_sasl_mechanism
        kw["sasl_plain_username"] = s.kafka_sasl_username
        kw["sasl_plain_password"] = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None
    return kw


def faust_credentials():
    """`broker_credentials` for the Faust app (None: plaintext)."""
    import faust

    s = get_settings()
    proto = s.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return faust.SSLCredentials(ssl_context())
    return faust.SASLCredentials(
        username=s.kafka_sasl_username,
        password=s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None,
        ssl_context=ssl_context() if proto == "SASL_SSL" else None,
        mechanism=s.kafka_sasl_mechanism,
    )
