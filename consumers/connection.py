"""How every Kafka client of Podium reaches the brokers: the consumer group, the topic admin,
the operators' log-range reader (and any producer). One function builds what they share
from Settings, so TLS and SASL reach them all alike."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from service.config import Settings, SettingsError


def kafka_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's connection arguments: the bootstrap servers, the security protocol and,
    as it needs, a TLS context (verifying the brokers against `PODIUM_KAFKA_SSL_CAFILE`, or
    the system's CAs) and SASL credentials."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _tls_context(settings.kafka_ssl_cafile)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise SettingsError(
            f"PODIUM_KAFKA_SSL_CAFILE={cafile!r} cannot be used: {error.strerror or error}"
        ) from None
    return context
