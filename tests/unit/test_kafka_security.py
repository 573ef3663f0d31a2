"""The settings of a secured Kafka connection: what every client gets, and what is refused at start."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr, ValidationError

from services.runtime.kafka_security import client_options, faust_credentials
from services.runtime.settings import PROJECT_ROOT, Settings
from tests.support.tls import make_secrets

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test password


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_secrets(tmp_path_factory.mktemp("secrets"))


def sasl_ssl(secrets: Path, **more: object) -> Settings:
    return Settings(
        broker="kafka://kafka-1:9092", kafka_security_protocol="SASL_SSL", kafka_username="ingest",
        kafka_password=SecretStr(PASSWORD), kafka_ca_file=secrets / "ca.crt", **more,
    )


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings()
    assert client_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_sasl_ssl_gives_every_client_scram_over_checked_tls(secrets: Path) -> None:
    options = client_options(sasl_ssl(secrets))
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ingest", "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "ceasefire-monitor private CA"),),)


def test_the_faust_app_connects_as_the_other_clients_do(secrets: Path) -> None:
    settings = sasl_ssl(secrets, kafka_cert_file=secrets / "admin.crt", kafka_key_file=secrets / "admin.key")
    faust_side = dict(credentials_to_aiokafka_auth(faust_credentials(settings)))
    ours = client_options(settings)
    assert {k: v for k, v in faust_side.items() if k != "ssl_context"} == {k: v for k, v in ours.items() if k != "ssl_context"}
    assert isinstance(faust_side["ssl_context"], ssl.SSLContext)
    tls_only = Settings(kafka_security_protocol="SSL", kafka_ca_file=secrets / "ca.crt")
    assert credentials_to_aiokafka_auth(faust_credentials(tls_only))["security_protocol"] == "SSL"


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_username": "ingest"}, "needs kafka_username and kafka_password"),
        ({"kafka_username": "ingest", "kafka_password": "x"}, "sends no SASL"),
        ({"kafka_ca_file": "ca.crt"}, "uses no TLS"),
        ({"kafka_security_protocol": "SSL", "kafka_cert_file": "admin.crt"}, "go together"),
        ({"kafka_security_protocol": "SSL", "kafka_ca_file": "no-such.crt"}, "does not point to a file"),
        ({"kafka_security_protocol": "TLS"}, "PLAINTEXT"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI", "kafka_username": "u", "kafka_password": "p"}, "SCRAM-SHA-512"),
    ],
)
def test_a_half_configured_connection_is_refused_at_start(secrets: Path, fields: dict[str, str], complaint: str) -> None:
    values = {k: (secrets / v if k.endswith("_file") else v) for k, v in fields.items()}
    with pytest.raises(ValidationError, match=complaint):
        Settings(**values)


def test_the_password_is_never_shown_but_reaches_a_child(secrets: Path) -> None:
    settings = sasl_ssl(secrets)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    assert settings.environment({})["CEASEFIRE_KAFKA_PASSWORD"] == PASSWORD


def test_a_password_can_come_from_the_secrets_dir(tmp_path: Path) -> None:
    """Docker's secrets are files (/run/secrets/<name>): CEASEFIRE_SECRETS_DIR names the directory."""
    (tmp_path / "ceasefire_kafka_password").write_text(PASSWORD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEASEFIRE_")} | {
        "CEASEFIRE_SECRETS_DIR": str(tmp_path), "CEASEFIRE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CEASEFIRE_KAFKA_USERNAME": "ingest",
    }
    script = "from services.runtime.settings import Settings; print(Settings().kafka_password.get_secret_value())"
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, check=True)  # noqa: S603
    assert out.stdout.decode().strip() == PASSWORD


@pytest.mark.parametrize(
    "url", ["kafka://kafka-1:9092,kafka-2:9092,kafka-3:9092", "kafka://kafka-1:9092;kafka://kafka-2:9092;kafka://kafka-3:9092"]
)
def test_several_brokers_reach_every_client_as_one_list(url: str) -> None:
    assert Settings(broker=url).bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
