"""How a server or device connection is protected, checked before anything starts.

Kept apart from `fedge.launch` (and from `fedge.certs`, which needs the
`cryptography` package) so that the `fedge` command parses its options with the
standard library alone: `fedge predict` runs on devices that have only numpy and
ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedge.processes import LaunchError, is_loopback

# The files `fedge certs` writes and `fedge server --certs DIR` reads.
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"


@dataclass(frozen=True)
class Security:
    """How a connection is protected: TLS from `fedge certs`, device keys, or (on loopback) none."""

    insecure: bool = False
    certs: Path | None = None  # server: the folder `fedge certs` wrote
    authorized_keys: Path | None = None  # server: folder of the devices' *.pub keys
    root_cert: Path | None = None  # client: the CA certificate (ca.pem)
    key: Path | None = None  # client: this device's private key

    def check(self, host: str) -> None:
        """Refuse what would be unsafe or cannot work, before anything starts."""
        if not (self.certs or self.root_cert or self.insecure or is_loopback(host)):
            raise LaunchError(f"{host} is not a loopback address: an unencrypted connection would expose "
                              "model updates on the network. Use TLS (`fedge certs`, then --certs on the "
                              "server, --root-cert on clients) or pass --insecure to accept that explicitly.")
        if self.authorized_keys and not self.certs:
            raise LaunchError("--authorized-keys needs --certs: Flower authenticates devices only over TLS")
        if self.key and not self.root_cert:
            raise LaunchError("--key needs --root-cert: Flower authenticates devices only over TLS")
        for path in [*self.server_files(), self.root_cert, self.key]:
            if path and not path.is_file():
                raise LaunchError(f"{path} does not exist (create it with `fedge certs`)")
        if self.authorized_keys and not self.device_keys():
            raise LaunchError(f"{self.authorized_keys} holds no device public keys (*.pub); create them with "
                              "`fedge certs DIR --device NAME`")

    def server_files(self) -> list[Path]:
        return [self.certs / name for name in (CA_CERT, SERVER_CERT, SERVER_KEY)] if self.certs else []

    def device_keys(self) -> list[Path]:
        return sorted(self.authorized_keys.glob("*.pub")) if self.authorized_keys else []

    def superlink_args(self) -> list[str]:
        if not self.certs:
            return ["--insecure"]
        ca, cert, key = map(str, self.server_files())
        auth = ["--enable-supernode-auth"] if self.authorized_keys else []
        return ["--ssl-ca-certfile", ca, "--ssl-certfile", cert, "--ssl-keyfile", key, *auth]

    def supernode_args(self) -> list[str]:
        tls = ["--root-certificates", str(self.root_cert)] if self.root_cert else ["--insecure"]
        return tls + (["--auth-supernode-private-key", str(self.key)] if self.key else [])
