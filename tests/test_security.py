"""TLS with certificates from `fedge certs`, and a server that admits only devices it knows."""

import shutil
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fedge.certs import make_certs
from fedge.processes import free_port, local_host
from fedge.results import read_metrics
from tests.processes import demo_client, listening_addresses, wait_for_line


def test_certs_hold_the_hosts_and_loopback_as_subject_alternative_names_and_p384_device_keys(tmp_path: Path):
    make_certs(tmp_path, ["edge.example", "10.1.2.3"], ["pump-1"])
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3", "127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["edge.example", "localhost"]
    assert server.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "edge.example"
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    assert (tmp_path / "devices" / "pump-1.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    assert (tmp_path / "devices" / "pump-1").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)
    assert oct((tmp_path / "server.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError, match="already exists"):
        make_certs(tmp_path, ["127.0.0.1"], [])


def test_loopback_is_not_named_twice(tmp_path: Path):
    make_certs(tmp_path, ["127.0.0.1", "localhost"], [])
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["127.0.0.1", "localhost"]


@pytest.mark.parametrize("bound,reached", [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"),
                                           ("127.0.0.1", "127.0.0.1"), ("server.example.org", "server.example.org")])
def test_the_server_reaches_its_own_superlink_on_loopback_when_bound_to_every_interface(bound, reached):
    assert local_host(bound) == reached


@pytest.mark.parametrize("args,message", [
    (["server", "--address", "127.0.0.1:9", "--authorized-keys", "keys"],
     "fedge server: error: --authorized-keys needs --certs: Flower authenticates devices only over TLS"),
    (["server", "--address", "127.0.0.1:9", "--certs", "nowhere"],
     "fedge server: error: nowhere/ca.pem does not exist (create it with `fedge certs`)"),
    (["client", "--server", "127.0.0.1:9", "--dataset", "digits", "--partition-id", "0", "--num-partitions", "2",
      "--key", "k"], "fedge client: error: --key needs --root-cert: Flower authenticates devices only over TLS"),
])
def test_inconsistent_security_options_are_refused(fedge, tmp_path: Path, args, message):
    result = fedge.run(args, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [message]


@pytest.mark.slow
def test_only_a_registered_device_with_the_ca_trains(fedge, tmp_path: Path):
    certs = tmp_path / "certs"
    # Named as a deployment would be: devices reach the server here by 127.0.0.1, which
    # `fedge certs` adds to every certificate, and so does the server's own readiness check.
    make_certs(certs, ["server.example.org"], ["known", "stranger"])
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    shutil.copy(certs / "devices" / "known.pub", authorized)
    make_certs(tmp_path / "other", ["127.0.0.1"], [])  # a CA that did not sign the server's certificate
    address = f"127.0.0.1:{free_port()}"
    server = fedge.start(["server", "--address", address, "--certs", str(certs), "--authorized-keys",
                          str(authorized), "--rounds", "1", "--min-clients", "1", "--dataset", "digits",
                          "--out", str(tmp_path / "runs"), "--name", "tls"], tmp_path / "server.log")
    ca = ["--root-cert", str(certs / "ca.pem")]
    wait_for_line(tmp_path / "server.log", "fedge: device key known.pub registered", server, timeout=120)
    stranger = fedge.start([*demo_client(address, 1, 2), *ca, "--key", str(certs / "devices" / "stranger")],
                           tmp_path / "stranger.log")
    no_ca = fedge.start([*demo_client(address, 1, 2), "--root-cert", str(tmp_path / "other" / "ca.pem")],
                        tmp_path / "no-ca.log")
    fedge.start([*demo_client(address, 0, 2), *ca, "--key", str(certs / "devices" / "known")],
                        tmp_path / "known.log")

    assert server.wait(timeout=400) == 0, (tmp_path / "server.log").read_text()
    assert "fedge: device key known.pub registered" in (tmp_path / "server.log").read_text()
    assert [r["train-clients"] for r in read_metrics(tmp_path / "runs" / "tls")] == [1]
    assert stranger.wait(timeout=60) == 2
    key = certs / "devices" / "stranger"
    assert (tmp_path / "stranger.log").read_text().splitlines()[-1] == (
        f"fedge client: error: the server at {address} does not admit this device: the public key of --key {key} "
        "is not among its --authorized-keys. Ask its operator to add stranger.pub and restart")
    assert no_ca.wait(timeout=60) == 2
    assert (tmp_path / "no-ca.log").read_text().splitlines()[-1] == (
        f"fedge client: error: the server at {address} presented a TLS certificate not signed by --root-cert "
        f"{tmp_path / 'other' / 'ca.pem'}: use the ca.pem from the server's `fedge certs` folder (or this is not "
        "your server)")


@pytest.mark.slow
def test_a_simulation_listens_only_on_loopback(fedge, tmp_path: Path):
    simulation = fedge.start(["simulate", "--clients", "2", "--rounds", "2", "--local-epochs", "1",
                              "--out", str(tmp_path)], tmp_path / "simulate.log")
    seen: set[str] = set()
    while simulation.poll() is None:
        seen |= listening_addresses(fedge.tag)
        time.sleep(0.5)
    assert simulation.returncode == 0, (tmp_path / "simulate.log").read_text()
    assert len(seen) >= 3  # SuperLink, Ray's GCS and raylet at least
    assert [a for a in seen if not a.startswith("127.")] == []
