"""Ask TLS clients for a certificate without judging it in the handshake, as kube-apiserver does.

Why it exists: kube-apiserver asks every client for a certificate and accepts whatever comes (Go's
`tls.RequestClientCert`); its x509 authenticator then verifies it, so a certificate of another CA,
an expired one or one without client-auth usage gets an HTTP 401 with a reason. Python's `ssl`
offers only CERT_OPTIONAL (OpenSSL's SSL_VERIFY_PEER): a presented certificate is verified during
the handshake and a bad one kills the connection with a TLS alert, before any HTTP is spoken, and
`ssl` has no verify callback to change that.

`request_without_verifying(ctx)` installs OpenSSL's verify callback on the context's SSL_CTX
through ctypes: one that accepts every chain. OpenSSL still checks the TLS proof of possession
(the client's CertificateVerify signature with the certificate's key) and still parses the
certificate (a malformed one fails the handshake, as with Go). Who issued the certificate and when
it is valid are then the caller's to check: the API server's `Authenticator` does it for every
certificate (`ClusterPKI.verify_client_cert`) and never reads `getpeercert()`'s dict, which OpenSSL
now fills for unverified certificates too. Nothing else may use such a context.

How: CPython keeps the SSL_CTX pointer as the first field after the object header of an
`ssl.SSLContext` (`PySSLContext` in Modules/_ssl.c); `SSL_CTX_set_verify` is looked up through the
`_ssl` extension's handle, i.e. in the very libssl it is linked against. Both are checked before
anything is written: the library's version must be `ssl.OPENSSL_VERSION_NUMBER`, and the pointer
must give back the context's own options and verify mode; anything else raises `TLSSetupError`
naming what did not match (never a silent fall back to verifying in the handshake). Setting
`verify_mode` on the context afterwards would drop the callback (CPython passes NULL), so this is
the last thing done to it. The callback runs once per certificate per handshake, never per
request; other approaches and why they were not taken: nbkube/apiserver/authn.py.
"""

from __future__ import annotations

import ctypes
import ssl
import sys

__all__ = ["TLSSetupError", "request_without_verifying"]


class TLSSetupError(RuntimeError):
    """This Python's ssl module cannot be told to request client certificates without verifying."""


_VERIFY_PEER = 1  # SSL_VERIFY_PEER: send a CertificateRequest (CERT_OPTIONAL's mode)
_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VerifyCallback
def _accept(_preverify_ok: int, _store_ctx: int | None) -> int:
    return 1  # judged after the handshake, by the authenticator


class _LibSSL:
    def __init__(self) -> None:
        if sys.implementation.name != "cpython":
            raise TLSSetupError(f"needs CPython's ssl module, this is {sys.implementation.name}")
        import _ssl

        try:
            lib = ctypes.CDLL(_ssl.__file__)
            version = lib.OpenSSL_version_num
            self.set_verify = lib.SSL_CTX_set_verify
            self.get_verify_mode = lib.SSL_CTX_get_verify_mode
            self.get_options = lib.SSL_CTX_get_options
        except (OSError, AttributeError) as exc:
            raise TLSSetupError(f"libssl's functions are not reachable from {_ssl.__file__}: {exc}") from None
        version.restype = ctypes.c_ulong
        if version() != ssl.OPENSSL_VERSION_NUMBER:
            raise TLSSetupError(
                f"the libssl found ({version():#x}) is not the ssl module's ({ssl.OPENSSL_VERSION_NUMBER:#x})"
            )
        self.set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
        self.set_verify.restype = None
        self.get_verify_mode.argtypes = [ctypes.c_void_p]
        self.get_verify_mode.restype = ctypes.c_int
        self.get_options.argtypes = [ctypes.c_void_p]
        self.get_options.restype = ctypes.c_uint64


_lib: _LibSSL | None = None


def request_without_verifying(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """`ctx` (a server context with verify_mode CERT_OPTIONAL), changed to request a client
    certificate and accept any in the handshake; the caller verifies it (see the module)."""
    global _lib
    if ctx.verify_mode != ssl.CERT_OPTIONAL:
        raise TLSSetupError(f"the context's verify_mode must be CERT_OPTIONAL, not {ctx.verify_mode!r}")
    if _lib is None:
        _lib = _LibSSL()
    if type(ctx).__basicsize__ < object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p):
        raise TLSSetupError("ssl.SSLContext objects have no room for an SSL_CTX pointer")
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer:
        raise TLSSetupError("ssl.SSLContext holds no SSL_CTX where CPython keeps it")
    if _lib.get_options(pointer) != int(ctx.options) or _lib.get_verify_mode(pointer) != _VERIFY_PEER:
        raise TLSSetupError("ssl.SSLContext's layout is not the one this module knows (SSL_CTX check failed)")
    _lib.set_verify(pointer, _VERIFY_PEER, _accept)
    return ctx
