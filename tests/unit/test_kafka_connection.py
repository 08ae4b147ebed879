"""Every Kafka client reaches the brokers with the same security settings, built in one place."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from consumers.connection import kafka_options
from service.config import Settings, SettingsError
from tests.certificates import Authority

SASL = {
    "PODIUM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "PODIUM_KAFKA_SASL_USERNAME": "podium",
    "PODIUM_KAFKA_SASL_PASSWORD": "hunter2",
}


def options(**env: str) -> dict[str, object]:
    return kafka_options(Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093", **env}))


def test_plaintext_is_the_default_with_neither_tls_nor_sasl() -> None:
    assert options() == {"bootstrap_servers": "k1:9093,k2:9093", "security_protocol": "PLAINTEXT"}


def test_sasl_over_plaintext_passes_the_mechanism_and_credentials() -> None:
    assert options(PODIUM_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", **SASL) == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "podium",
        "sasl_plain_password": "hunter2",
    }


def test_sasl_over_tls_verifies_the_brokers_against_the_configured_ca(tmp_path: Path) -> None:
    ca = Authority(tmp_path, "kafka-ca")
    got = options(
        PODIUM_KAFKA_SECURITY_PROTOCOL="SASL_SSL", PODIUM_KAFKA_SSL_CAFILE=str(ca.cert), **SASL
    )
    context = got["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    [authority] = context.get_ca_certs()
    assert ("commonName", "kafka-ca") in authority["subject"][0]
    assert (got["security_protocol"], got["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")


def test_tls_without_a_ca_file_trusts_the_systems_cas() -> None:
    context = options(PODIUM_KAFKA_SECURITY_PROTOCOL="SSL")["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert "sasl_mechanism" not in options(PODIUM_KAFKA_SECURITY_PROTOCOL="SSL")


def test_an_unreadable_ca_file_stops_start_up_naming_its_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PODIUM_KAFKA_SSL_CAFILE"):
        options(PODIUM_KAFKA_SECURITY_PROTOCOL="SSL", PODIUM_KAFKA_SSL_CAFILE=str(tmp_path / "no"))
