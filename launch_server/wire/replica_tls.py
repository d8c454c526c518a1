"""TLS for replica ports (the direct route and the task channel), when LAUNCH_REPLICA_TLS=1.

On a multi-node cluster a replica's port is on the node's address, where anyone on that network
could listen in or pose as a replica. With TLS on, the servers make one private certificate
authority (kept in the database they share, beside the route secret) and one certificate for
replicas signed by it; the reconciler hands the certificate and its key to every replica in its
deployment arguments, and clients (the SDK and the server's own dispatcher) verify replicas
against the authority, which GetModelEndpointRoute returns with every route. Replica
certificates name SERVER_NAME rather than an address, because replicas bind whatever address
their node has; clients check that name (`grpc.ssl_target_name_override`).

The trust boundary (docs/serving.md, "Replica ports and TLS"): whoever can read the database or
a replica's deployment arguments (the Ray cluster's GCS) can pose as a replica; API keys, route
tokens and request bodies never travel in plaintext off the server's host once TLS is on."""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass

SERVER_NAME = "launch-replica"
VALID_DAYS = 3650


@dataclass(frozen=True)
class ReplicaTls:
    """PEM text of the authority's certificate and of the replicas' certificate and key."""

    ca_pem: str
    cert_pem: str
    key_pem: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReplicaTls:
        return cls(**json.loads(text))


def make_replica_tls() -> ReplicaTls:
    """A fresh authority and a replica certificate for SERVER_NAME signed by it (ECDSA P-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Launch replica authority")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ReplicaTls(
        ca_pem=ca_cert.public_bytes(pem).decode(),
        cert_pem=cert.public_bytes(pem).decode(),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    )


def channel_options(ca_pem: str) -> list[tuple[str, str]]:
    """Channel options a client adds for a TLS replica port: the name its certificate carries."""
    return [("grpc.ssl_target_name_override", SERVER_NAME)] if ca_pem else []
