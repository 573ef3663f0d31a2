"""How every Kafka client of the service connects: plain, TLS, or SASL (SCRAM) over TLS.

One place turns the settings into client options, so that on a secured cluster no client is left
behind (the Faust app, the admin clients, the archive's and the forwarder's consumers, the HTTP
ingest's producer, the CLI): docs/security.md.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from services.runtime.settings import Settings


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the brokers' certificates and host names checked), else None."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    key_password = settings.kafka_key_password.get_secret_value() if settings.kafka_key_password else None
    return create_ssl_context(
        cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None,
        certfile=str(settings.kafka_cert_file) if settings.kafka_cert_file else None,
        keyfile=str(settings.kafka_key_file) if settings.kafka_key_file else None,
        password=key_password,
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client (producer, consumer, admin) the service makes."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = tls_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_password is not None  # the settings' validator says so  # noqa: S101
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password.get_secret_value(),
        }
    return options


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The same connection for the Faust app (its consumer, producer and topic creation)."""
    context = tls_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_password is not None  # noqa: S101
        return faust.SASLCredentials(
            username=settings.kafka_username,
            password=settings.kafka_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
