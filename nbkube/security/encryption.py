"""Secrets encrypted at rest, as kube-apiserver's `--encryption-provider-config` does it.

Who calls it: the cluster wiring (`nbkube.cluster.make_registry`), which hands the Registry one
value transformer per resource named here (`transformers_for`), and `nbkube secrets rotate-key |
rewrite` (`rotate`, `drop_old_keys`). The Registry applies a transformer to the bytes of every
object of that resource on the way to the store and back, so neither SQLite nor etcd ever sees a
Secret in the clear (nor its `kubectl.kubernetes.io/last-applied-configuration` copy, which the
Registry strips of `data`/`stringData`).

The configuration file is an `EncryptionConfiguration` (apiserver.config.k8s.io/v1) in the cluster's
folder (`encryption-config.yaml`, 0600 in a 0700 folder), created at the cluster's first start with
one fresh 256-bit AES-GCM key and the `identity` provider after it (so Secrets stored before
encryption was turned on stay readable until `nbkube secrets rewrite` encrypts them):

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
    - resources: [secrets]
      providers:
      - aesgcm:
          keys:
          - {name: key1, secret: <base64 of 32 random bytes>}
      - identity: {}

As upstream: the first provider (and its first key) writes, every provider reads; a value is
`k8s:enc:aesgcm:v1:<key name>:` + a random 12-byte nonce + AES-GCM ciphertext, authenticated with
the store key as associated data (a value copied under another key does not decrypt). Rotation is
upstream's procedure: `rotate` puts a new key first, `nbkube secrets rewrite` re-writes every
Secret with it, then `drop_old_keys` removes the rest. The file is re-read when it changes, so a
running cluster follows a rotation made by another process.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nbkube.errors import BadRequest, NbkubeError
from nbkube.security.private import create_private_file, make_private_dir, write_private_file

__all__ = [
    "CONFIG_FILE",
    "AESGCM_PREFIX",
    "ENCRYPTED_PREFIX",
    "EncryptionError",
    "AesGcmKey",
    "Provider",
    "EncryptionConfig",
    "Keyring",
    "ResourceTransformer",
    "parse_config",
    "ensure_config",
    "rotate",
    "drop_old_keys",
    "transformers_for",
]

CONFIG_FILE = "encryption-config.yaml"
API_VERSION = "apiserver.config.k8s.io/v1"
ENCRYPTED_PREFIX = b"k8s:enc:"
AESGCM_PREFIX = b"k8s:enc:aesgcm:v1:"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_PROVIDERS = ("aesgcm", "identity")


class EncryptionError(NbkubeError):
    """A stored value cannot be decrypted (its key is not configured, or it does not authenticate)."""


@dataclass(frozen=True)
class AesGcmKey:
    name: str
    secret: bytes


@dataclass(frozen=True)
class Provider:
    """One entry of a resource's `providers` list: "aesgcm" with its keys, or "identity"."""

    type: str
    keys: tuple[AesGcmKey, ...] = ()


@dataclass(frozen=True)
class EncryptionConfig:
    source: str  # the file it came from, named in every error
    # resource plural ("secrets") -> its providers, the writer first
    resources: Mapping[str, tuple[Provider, ...]]


# --- reading and writing the file ------------------------------------------------------------------


def _field(source: str, path: str, message: str) -> BadRequest:
    return BadRequest(f"{source}: {path}: {message}")


def _parse_key(source: str, path: str, raw: Any) -> AesGcmKey:
    if not isinstance(raw, dict):
        raise _field(source, path, "must be a mapping with name and secret")
    name = raw.get("name")
    if not isinstance(name, str) or not name or ":" in name:
        raise _field(source, f"{path}.name", "required, and must not contain ':'")
    try:
        secret = base64.b64decode(str(raw.get("secret", "")), validate=True)
    except (binascii.Error, ValueError):
        raise _field(source, f"{path}.secret", "must be base64") from None
    if len(secret) not in (16, 24, 32):
        raise _field(source, f"{path}.secret", f"must be 16, 24 or 32 bytes, got {len(secret)}")
    unknown = set(raw) - {"name", "secret"}
    if unknown:
        raise _field(source, path, f"unknown field {sorted(unknown)[0]!r}")
    return AesGcmKey(name, secret)


def _parse_provider(source: str, path: str, raw: Any) -> Provider:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise _field(source, path, "must name exactly one provider (aesgcm or identity)")
    ((ptype, body),) = raw.items()
    if ptype not in _PROVIDERS:
        raise _field(source, path, f"provider {ptype!r} is not supported (supported: aesgcm, identity)")
    if ptype == "identity":
        if body not in (None, {}):
            raise _field(source, f"{path}.identity", "takes no settings")
        return Provider("identity")
    keys_raw = (body or {}).get("keys") if isinstance(body, dict) else None
    if not isinstance(keys_raw, list) or not keys_raw:
        raise _field(source, f"{path}.aesgcm.keys", "at least one key is required")
    keys = tuple(_parse_key(source, f"{path}.aesgcm.keys[{i}]", k) for i, k in enumerate(keys_raw))
    names = [k.name for k in keys]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise _field(source, f"{path}.aesgcm.keys", f"key name {dup!r} appears twice")
    return Provider("aesgcm", keys)


def parse_config(doc: Any, source: str) -> EncryptionConfig:
    """An EncryptionConfiguration document; BadRequest naming `source` and the field otherwise."""
    if not isinstance(doc, dict):
        raise BadRequest(f"{source}: not an EncryptionConfiguration (expected a mapping)")
    if doc.get("kind") != "EncryptionConfiguration" or doc.get("apiVersion") != API_VERSION:
        raise BadRequest(f"{source}: expected kind EncryptionConfiguration, apiVersion {API_VERSION}")
    entries = doc.get("resources")
    if not isinstance(entries, list) or not entries:
        raise _field(source, "resources", "at least one entry is required")
    resources: dict[str, tuple[Provider, ...]] = {}
    for i, entry in enumerate(entries):
        path = f"resources[{i}]"
        if not isinstance(entry, dict):
            raise _field(source, path, "must be a mapping with resources and providers")
        names = entry.get("resources")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise _field(source, f"{path}.resources", "a list of resource names (e.g. secrets) is required")
        providers_raw = entry.get("providers")
        if not isinstance(providers_raw, list) or not providers_raw:
            raise _field(source, f"{path}.providers", "at least one provider is required")
        providers = tuple(
            _parse_provider(source, f"{path}.providers[{j}]", p) for j, p in enumerate(providers_raw)
        )
        for name in names:
            if "*" in name or "." in name:
                raise _field(
                    source, f"{path}.resources", f"{name!r}: only core resources by plural name are supported"
                )
            if name in resources:
                raise _field(source, f"{path}.resources", f"{name!r} is configured twice")
            resources[name] = providers
    return EncryptionConfig(source, resources)


def load_config(path: str) -> EncryptionConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except FileNotFoundError:
        raise BadRequest(f"{path}: no such encryption configuration") from None
    except PermissionError:
        raise BadRequest(f"{path}: permission denied (the encryption keys belong to another user)") from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"{path}: not valid YAML: {exc}") from None
    return parse_config(doc, path)


def _new_key(name: str) -> dict[str, str]:
    return {"name": name, "secret": base64.b64encode(os.urandom(_KEY_BYTES)).decode()}


def _dump(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False).encode()


def ensure_config(folder: str) -> str:
    """The path of `folder`'s encryption configuration, created (one fresh key, for Secrets) when
    missing. The folder is made (or tightened to) 0700, the file is 0600."""
    make_private_dir(folder)
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.exists(path):
        doc = {
            "apiVersion": API_VERSION,
            "kind": "EncryptionConfiguration",
            "resources": [
                {
                    "resources": ["secrets"],
                    "providers": [{"aesgcm": {"keys": [_new_key("key1")]}}, {"identity": {}}],
                }
            ],
        }
        create_private_file(path, _dump(doc))  # a concurrent first start may win: theirs is as good
    return path


def _read_doc(path: str) -> dict[str, Any]:
    load_config(path)  # refuse to edit a file that is not valid now
    with open(path, encoding="utf-8") as fh:
        doc: dict[str, Any] = yaml.safe_load(fh)
    return doc


def _aesgcm_of(doc: dict[str, Any], path: str, resource: str) -> dict[str, Any]:
    for entry in doc["resources"]:
        if resource in entry["resources"]:
            first = entry["providers"][0]
            if "aesgcm" not in first:
                raise BadRequest(f"{path}: the first provider of {resource} is not aesgcm: nothing to rotate")
            body: dict[str, Any] = first["aesgcm"]
            return body
    raise BadRequest(f"{path}: {resource} are not configured for encryption")


def rotate(path: str, resource: str = "secrets") -> str:
    """Put a new AES-GCM key first for `resource` (it writes from now on; the old keys still read).
    Returns the new key's name. Then `rewrite` every object and `drop_old_keys`."""
    doc = _read_doc(path)
    body = _aesgcm_of(doc, path, resource)
    names = {str(k["name"]) for k in body["keys"]}
    n = len(names) + 1
    while f"key{n}" in names:
        n += 1
    name = f"key{n}"
    body["keys"].insert(0, _new_key(name))
    write_private_file(path, _dump(doc))
    return name


def drop_old_keys(path: str, resource: str = "secrets") -> list[str]:
    """Keep only the writing key of `resource`; returns the names dropped. Only safe once every
    object was rewritten with that key (`nbkube secrets rewrite` does both, in that order)."""
    doc = _read_doc(path)
    body = _aesgcm_of(doc, path, resource)
    dropped = [str(k["name"]) for k in body["keys"][1:]]
    if dropped:
        del body["keys"][1:]
        write_private_file(path, _dump(doc))
    return dropped


# --- the transformer the Registry calls -----------------------------------------------------------


class Keyring:
    """The configuration file, re-read when it changes (another process rotated the keys)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._config = self._reload()

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise EncryptionError(f"{self.path}: the encryption configuration is gone") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _reload(self) -> EncryptionConfig:
        stamp = self._stat()
        config = load_config(self.path)
        self._stamp = stamp
        return config

    def config(self) -> EncryptionConfig:
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._config = self._reload()
        return self._config


class ResourceTransformer:
    """Encrypts and decrypts the stored bytes of one resource (e.g. "secrets") with a Keyring.

    Implements the Registry's value-transformer seam: `to_storage(data, key)` and
    `from_storage(data, key) -> (data, stale)`, stale meaning "not written by the current writer"
    (what `Registry.rewrite` looks for)."""

    def __init__(self, keyring: Keyring, resource: str):
        self.keyring = keyring
        self.resource = resource

    def _providers(self) -> tuple[Provider, ...]:
        providers = self.keyring.config().resources.get(self.resource)
        if not providers:
            raise EncryptionError(f"{self.keyring.path}: {self.resource} are no longer configured")
        return providers

    def to_storage(self, data: bytes, key: str) -> bytes:
        writer = self._providers()[0]
        if writer.type == "identity":
            return data
        aes = writer.keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(aes.secret).encrypt(nonce, data, key.encode())
        return AESGCM_PREFIX + aes.name.encode() + b":" + nonce + sealed

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]:
        providers = self._providers()
        writer = providers[0]
        if not data.startswith(ENCRYPTED_PREFIX):
            if not any(p.type == "identity" for p in providers):
                raise EncryptionError(
                    f"stored unencrypted, and {self.keyring.path} has no identity provider for {self.resource}"
                )
            return data, writer.type != "identity"
        if not data.startswith(AESGCM_PREFIX):
            kind = data[len(ENCRYPTED_PREFIX) :].split(b":", 1)[0].decode(errors="replace")
            raise EncryptionError(f"encrypted by provider {kind!r}, which nbkube does not support")
        name_raw, sep, rest = data[len(AESGCM_PREFIX) :].partition(b":")
        name = name_raw.decode(errors="replace")
        if not sep or len(rest) < _NONCE_BYTES + 16:
            raise EncryptionError(f"the value encrypted with key {name!r} is truncated")
        keys = {k.name: k for p in providers if p.type == "aesgcm" for k in p.keys}
        aes = keys.get(name)
        if aes is None:
            raise EncryptionError(
                f"encrypted with key {name!r}, which {self.keyring.path} does not hold "
                f"(it holds: {', '.join(keys) or 'none'})"
            )
        try:
            plain = AESGCM(aes.secret).decrypt(rest[:_NONCE_BYTES], rest[_NONCE_BYTES:], key.encode())
        except InvalidTag:
            raise EncryptionError(
                f"key {name!r} of {self.keyring.path} does not decrypt it (another key of that name, "
                "or a damaged value)"
            ) from None
        stale = writer.type != "aesgcm" or writer.keys[0].name != name
        return plain, stale


def transformers_for(path: str) -> dict[str, ResourceTransformer]:
    """resource plural -> its transformer, for every resource the configuration at `path` names."""
    keyring = Keyring(path)
    return {resource: ResourceTransformer(keyring, resource) for resource in keyring.config().resources}
