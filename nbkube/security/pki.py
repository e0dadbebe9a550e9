"""A cluster's own public-key infrastructure: its CA, the API server's serving certificate, the
ServiceAccount signing key, client certificates and the TLS contexts built from them.

As kubeadm does for a Kubernetes cluster, each nbkube cluster keeps in one private folder:

- `ca.crt` / `ca.key`: a self-signed CA (10 years) that issues the serving and client certificates;
- `apiserver.crt` / `apiserver.key`: the API server's serving certificate (SANs 127.0.0.1, ::1,
  localhost, the in-cluster `kubernetes.default...` names and whatever the caller adds),
  re-issued when a wanted SAN is missing, it nears expiry or the CA changed;
- `sa.key` / `sa.pub`: the RSA key pair that signs and verifies ServiceAccount tokens
  (`tokens.TokenSigner`).

A client certificate's subject is the identity, as the API server reads it: CN = user name, each
O = a group (`identity_from_cert`). The folder is 0700 and every file 0600 (`files.py`). Callers:
the API server (serving context, authenticator), the CLI and cluster wiring (kubeconfigs for admins
and tenants), node agents (their own `system:node:NAME` certificates).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nbkube.security.files import (
    CredentialError,
    ensure_private_dir,
    file_lock,
    read_private,
    write_private,
)
from nbkube.security.tlsrequest import request_without_verifying

__all__ = [
    "ClusterPKI",
    "CredentialError",
    "identity_from_cert",
    "verify_client_cert",
    "client_ssl_context",
    "DEFAULT_SANS",
]

CA_DAYS = 3650
SERVING_DAYS = 365
RENEW_BEFORE_DAYS = 30  # a serving certificate this close to its end is re-issued on start
# What every serving certificate names: loopback, and the in-cluster names of the API as upstream's.
DEFAULT_SANS = (
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
_CA_CN = "nbkube-ca"
LOCK_FILE = ".lock"
_SERVING_CN = "kube-apiserver"


_VERIFIED_CACHE = 4096  # client certificates remembered as verified (see verify_client_cert)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(value: str) -> x509.GeneralName:
    text = value.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text or any(c.isspace() or c in "/:@" for c in text):
        raise CredentialError(f"subject alternative name {value!r}: not an IP address or DNS name")
    return x509.DNSName(text.lower())


def _load_cert(data: bytes, path: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CredentialError(f"{path}: not a PEM certificate") from None


def _load_key(data: bytes, path: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise CredentialError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CredentialError(f"{path}: unsupported key type {type(key).__name__} (EC or RSA only)")
    return key


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def identity_from_cert(der: bytes) -> tuple[str, tuple[str, ...]]:
    """(user, groups) a client certificate names: its subject's CN and each O, in order.

    Raises `CredentialError` for something that is not a DER certificate or has no CN. It does not
    check who issued the certificate: see `verify_client_cert` (the TLS handshake does that too).
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise CredentialError("client certificate: not a DER X.509 certificate") from None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    user = str(cns[0].value) if cns else ""
    if not user:
        raise CredentialError("client certificate: the subject has no common name (CN = user name)")
    groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return user, groups


def verify_client_cert(der: bytes, ca: x509.Certificate, now: datetime.datetime | None = None) -> None:
    """Raise `CredentialError` unless `der` was issued by `ca`, is valid now and allows client auth.

    The API server's TLS handshake accepts any certificate (as kube-apiserver's does, see
    `ClusterPKI.server_ssl_context`): this is the check that refuses one, with the reason.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise CredentialError("client certificate: not a DER X.509 certificate") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CredentialError("client certificate: not issued by this cluster's CA") from None
    at = now or _now()
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise CredentialError(
            f"client certificate: not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        )
    with contextlib.suppress(x509.ExtensionNotFound):
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            raise CredentialError("client certificate: its extended key usage does not allow client auth")


def client_ssl_context(
    ca_pem: bytes, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> ssl.SSLContext:
    """A TLS client context that trusts only `ca_pem` and presents the given client certificate.

    `ssl` loads a certificate chain only from files, so the PEMs go for a moment into a fresh 0700
    temporary folder (0600 files) that is removed before this returns.
    """
    if (cert_pem is None) != (key_pem is None):
        raise CredentialError("client certificate and key: give both or neither")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem.decode("ascii"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_pem is not None and key_pem is not None:
        with tempfile.TemporaryDirectory(prefix="nbkube-tls-") as tmp:  # mkdtemp makes it 0700
            cert_path, key_path = os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key")
            write_private(cert_path, cert_pem)
            write_private(key_path, key_pem)
            try:
                ctx.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                raise CredentialError(f"client certificate and key do not load: {exc.reason}") from None
    return ctx


class ClusterPKI:
    """The CA, serving certificate and ServiceAccount keys of one cluster, kept in `folder`.

    Nothing is read or written until `ensure()`, which creates what is missing and loads the rest.
    """

    def __init__(self, folder: str):
        self.folder = os.path.abspath(os.path.expanduser(folder))
        self._ca: x509.Certificate | None = None
        self._ca_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None
        self._ca_pem = b""
        self._sa_key_pem = b""
        self._sa_pub_pem = b""
        # verified client certificates: DER -> (identity, not before, not after)
        self._verified: dict[bytes, tuple[tuple[str, tuple[str, ...]], datetime.datetime, datetime.datetime]] = {}

    def __repr__(self) -> str:
        return f"ClusterPKI({self.folder!r})"

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    # -- first start or load -----------------------------------------------------------------------

    def ensure(self, extra_sans: Sequence[str] = ()) -> ClusterPKI:
        """Create (first start) or load the CA, the ServiceAccount keys and the serving certificate.

        The serving certificate is re-issued when one of `DEFAULT_SANS` + `extra_sans` is missing
        from it, when it ends within 30 days, or when it was not issued by the CA found here.
        A CA or key pair with one half missing is an error, never silently replaced: every
        certificate and token issued so far would stop working.
        """
        sans = [_san(s) for s in (*DEFAULT_SANS, *extra_sans)]
        ensure_private_dir(self.folder)
        # two processes starting on one folder must not both make a CA
        with file_lock(self._path(LOCK_FILE)):
            self._ensure_ca()
            self._ensure_sa_keys()
            self._ensure_serving(sans)
        return self

    def _existing(self, *names: str) -> list[bool]:
        return [os.path.lexists(self._path(n)) for n in names]

    def _ensure_ca(self) -> None:
        have_crt, have_key = self._existing("ca.crt", "ca.key")
        if have_crt != have_key:
            missing = "ca.key" if have_crt else "ca.crt"
            raise CredentialError(
                f"{self._path(missing)}: missing while its other half exists; restore it or remove both "
                "(a new CA invalidates every certificate issued so far)"
            )
        if have_crt:
            ca = _load_cert(read_private(self._path("ca.crt")), self._path("ca.crt"))
            key = _load_key(read_private(self._path("ca.key")), self._path("ca.key"))
            if not _same_public_key(ca, key):
                raise CredentialError(f"{self._path('ca.key')}: does not match {self._path('ca.crt')}")
        else:
            key = _new_ec_key()
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_CN)])
            now = _now()
            ca = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(_key_usage(cert_sign=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            # key first: a crash in between leaves ca.key without ca.crt, which ensure() reports
            write_private(self._path("ca.key"), _key_pem(key))
            write_private(self._path("ca.crt"), ca.public_bytes(serialization.Encoding.PEM))
        self._ca, self._ca_key = ca, key
        self._ca_pem = ca.public_bytes(serialization.Encoding.PEM)

    def _ensure_sa_keys(self) -> None:
        have_key, have_pub = self._existing("sa.key", "sa.pub")
        if have_pub and not have_key:
            raise CredentialError(
                f"{self._path('sa.key')}: missing while sa.pub exists; restore it or remove both "
                "(a new key invalidates every ServiceAccount token issued so far)"
            )
        if have_key:
            key = _load_key(read_private(self._path("sa.key")), self._path("sa.key"))
        else:
            # RSA as upstream's service-account key (RS256 tokens verify everywhere)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            write_private(self._path("sa.key"), _key_pem(key))
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if not have_pub or read_private(self._path("sa.pub")) != pub:
            write_private(self._path("sa.pub"), pub)
        self._sa_key_pem = _key_pem(key)
        self._sa_pub_pem = pub

    def _ensure_serving(self, sans: list[x509.GeneralName]) -> None:
        have_crt, have_key = self._existing("apiserver.crt", "apiserver.key")
        if have_crt and have_key:
            cert = _load_cert(read_private(self.serving_cert_path), self.serving_cert_path)
            key = _load_key(read_private(self.serving_key_path), self.serving_key_path)
            if self._serving_ok(cert, key, sans):
                return
        key = _new_ec_key()
        cert = self._sign(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _SERVING_CN)]),
            key.public_key(),
            SERVING_DAYS,
            ExtendedKeyUsageOID.SERVER_AUTH,
            x509.SubjectAlternativeName(_unique(sans)),
        )
        write_private(self.serving_key_path, _key_pem(key))
        write_private(self.serving_cert_path, cert.public_bytes(serialization.Encoding.PEM))

    def _serving_ok(
        self,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        sans: list[x509.GeneralName],
    ) -> bool:
        assert self._ca is not None
        if not _same_public_key(cert, key):
            return False
        try:
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        if cert.not_valid_after_utc - _now() < datetime.timedelta(days=RENEW_BEFORE_DAYS):
            return False
        try:
            present = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            return False
        return all(s in present for s in sans)

    def _sign(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        days: int,
        usage: x509.ObjectIdentifier,
        san: x509.SubjectAlternativeName | None = None,
    ) -> x509.Certificate:
        ca, ca_key = self._loaded()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def _loaded(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
        if self._ca is None or self._ca_key is None:
            raise CredentialError(f"{self.folder}: call ensure() before using the cluster PKI")
        return self._ca, self._ca_key

    # -- what callers use --------------------------------------------------------------------------

    @property
    def ca_cert(self) -> x509.Certificate:
        return self._loaded()[0]

    @property
    def ca_pem(self) -> bytes:
        self._loaded()
        return self._ca_pem

    @property
    def ca_path(self) -> str:
        return self._path("ca.crt")

    @property
    def serving_cert_path(self) -> str:
        return self._path("apiserver.crt")

    @property
    def serving_key_path(self) -> str:
        return self._path("apiserver.key")

    @property
    def sa_key_pem(self) -> bytes:
        """The ServiceAccount token signing key (PKCS#8 PEM), for `tokens.TokenSigner`."""
        self._loaded()
        return self._sa_key_pem

    @property
    def sa_pub_pem(self) -> bytes:
        self._loaded()
        return self._sa_pub_pem

    def issue_client_cert(
        self, user: str, groups: Iterable[str] = (), days: int = 365
    ) -> tuple[bytes, bytes]:
        """A new client certificate and key (PEM, PEM) for `user` in `groups` (CN=user, O=each group)."""
        if not isinstance(user, str) or not user.strip():
            raise CredentialError("client certificate: the user name (CN) may not be empty")
        if isinstance(groups, str):
            raise CredentialError("client certificate: groups must be a list of names, not one string")
        group_list = list(groups)
        if any(not isinstance(g, str) or not g for g in group_list):
            raise CredentialError("client certificate: group names (O) must be non-empty strings")
        if days < 1:
            raise CredentialError(f"client certificate: days must be at least 1, got {days}")
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in group_list]
            + [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        )
        key = _new_ec_key()
        cert = self._sign(subject, key.public_key(), days, ExtendedKeyUsageOID.CLIENT_AUTH)
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def verify_client_cert(self, der: bytes) -> tuple[str, tuple[str, ...]]:
        """(user, groups) of a client certificate after checking it against this cluster's CA.

        A certificate once verified is remembered with its validity window (a signature check
        costs far more than the request it guards, and a kept-alive client sends the same
        certificate with every request); outside that window it is checked, and refused, again."""
        now = _now()
        hit = self._verified.get(der)
        if hit is not None and hit[1] <= now <= hit[2]:
            return hit[0]
        verify_client_cert(der, self.ca_cert, now)
        cert = x509.load_der_x509_certificate(der)
        identity = identity_from_cert(der)
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()  # bounded; the next requests verify again
        self._verified[der] = (identity, cert.not_valid_before_utc, cert.not_valid_after_utc)
        return identity

    identity_from_cert = staticmethod(identity_from_cert)

    def server_ssl_context(self, *, verify_client_certs: bool = True) -> ssl.SSLContext:
        """A server TLS context: TLS 1.2 or later, the serving certificate, the cluster CA.

        `verify_mode` is CERT_OPTIONAL: the server asks every client for a certificate, and a client
        that sends none still connects (to authenticate with a bearer token, or as anonymous).
        With `verify_client_certs`, a certificate that is sent is verified by OpenSSL during the
        handshake against the cluster CA, including its validity dates and client-auth usage: one
        from another CA or an expired one makes the handshake itself fail (`ssl.SSLError` on both
        sides). Without, as kube-apiserver does, any certificate is accepted in the handshake
        (`tlsrequest.request_without_verifying`) and the caller must pass the DER of
        `getpeercert(binary_form=True)` to `verify_client_cert` before trusting anything in it:
        the API server's authenticator does, and answers 401 with the reason.
        """
        self._loaded()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.serving_cert_path, self.serving_key_path)
        ctx.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx if verify_client_certs else request_without_verifying(ctx)

    def client_ssl_context(
        self, cert_pem: bytes | None = None, key_pem: bytes | None = None
    ) -> ssl.SSLContext:
        """A client context that verifies the API server against this cluster's CA (see the
        module-level `client_ssl_context`, which needs only the CA's PEM)."""
        return client_ssl_context(self.ca_pem, cert_pem, key_pem)


def _key_usage(cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,  # EC keys sign (ECDHE); they never encipher a session key
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _unique(sans: list[x509.GeneralName]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for s in sans:
        if s not in out:
            out.append(s)
    return out
