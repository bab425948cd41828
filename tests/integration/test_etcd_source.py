"""The etcd source against real etcd servers: TLS client certificates and failover."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from harness import Etcd, free_port, ingress, service, store

from breakwater.cluster.source import EtcdSettings, SourceError
from breakwater.cluster.state import read_cluster


def make_pki(directory: Path, clients: tuple[str, ...] = ()) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl;
    ``clients``: more client certificates, each with its name as common name (etcd's
    user), as ``<name>_cert`` and ``<name>_key``."""
    directory.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
        *((client, "extendedKeyUsage=clientAuth") for client in clients),
    ):
        (directory / f"{name}.ext").write_text(extension + "\n")
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
        )
    return {
        "ca": str(directory / "ca.crt"),
        "server_cert": str(directory / "server.crt"),
        "server_key": str(directory / "server.key"),
        "client_cert": str(directory / "client.crt"),
        "client_key": str(directory / "client.key"),
        **{f"{name}_cert": str(directory / f"{name}.crt") for name in clients},
        **{f"{name}_key": str(directory / f"{name}.key") for name in clients},
    }


@pytest.fixture
def tls_etcd(tmp_path: Path):
    pki = make_pki(tmp_path / "pki")
    server = Etcd(tmp_path / "etcd", tls=pki)
    server.start()
    yield server, pki
    server.stop()


def test_tls_with_client_certificate(tls_etcd) -> None:
    server, pki = tls_etcd
    settings = EtcdSettings(
        endpoints=(server.endpoint,),
        ca_file=pki["ca"],
        cert_file=pki["client_cert"],
        key_file=pki["client_key"],
        timeout=3,
    )
    state = asyncio.run(read_cluster(settings))
    assert state.revision >= 1 and state.objects == {}


def test_tls_without_client_certificate_is_refused_clearly(tls_etcd) -> None:
    server, pki = tls_etcd
    settings = EtcdSettings(endpoints=(server.endpoint,), ca_file=pki["ca"], timeout=2)
    with pytest.raises(SourceError) as error:
        asyncio.run(read_cluster(settings))
    assert server.endpoint in str(error.value)


def test_failover_to_the_endpoint_that_answers(etcd) -> None:
    store(etcd, service("shop", "web"))
    store(etcd, ingress("shop", "web", "a.example.com", "web"))
    dead = f"http://127.0.0.1:{free_port()}"
    settings = EtcdSettings(endpoints=(dead, etcd.endpoint), timeout=2)
    state = asyncio.run(read_cluster(settings))
    assert sorted(state.objects) == [
        "/registry/ingress/shop/web",
        "/registry/services/specs/shop/web",
    ]


def test_no_endpoint_answers(tmp_path: Path) -> None:
    endpoints = tuple(f"http://127.0.0.1:{free_port()}" for _ in range(2))
    with pytest.raises(SourceError) as error:
        asyncio.run(read_cluster(EtcdSettings(endpoints=endpoints, timeout=1)))
    assert all(endpoint in str(error.value) for endpoint in endpoints)


def test_list_pages_through_large_prefixes(etcd) -> None:
    for index in range(1203):  # more than two pages of 500
        store(etcd, service("bulk", f"svc-{index}"))
    state = asyncio.run(read_cluster(EtcdSettings(endpoints=(etcd.endpoint,))))
    assert len(state.objects) == 1203
