"""The EncryptionConfiguration file and the AES-GCM transformer (nbkube/security/encryption.py)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import yaml

from nbkube.errors import BadRequest
from nbkube.security.encryption import (
    AESGCM_PREFIX,
    CONFIG_FILE,
    EncryptionError,
    Keyring,
    ResourceTransformer,
    drop_old_keys,
    ensure_config,
    parse_config,
    rotate,
    transformers_for,
)

KEY = "/registry/secrets/default/db"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_start_creates_a_private_key_file(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    path = ensure_config(str(folder))
    assert path == str(folder / CONFIG_FILE)
    assert _mode(folder) == 0o700 and _mode(Path(path)) == 0o600
    doc = yaml.safe_load(Path(path).read_text())
    assert doc["kind"] == "EncryptionConfiguration"
    entry = doc["resources"][0]
    assert entry["resources"] == ["secrets"]
    key = entry["providers"][0]["aesgcm"]["keys"][0]
    assert key["name"] == "key1" and len(base64.b64decode(key["secret"])) == 32
    assert entry["providers"][1] == {"identity": {}}
    # a second start keeps the key it found
    before = Path(path).read_bytes()
    assert ensure_config(str(folder)) == path and Path(path).read_bytes() == before


def test_values_are_sealed_with_the_first_key_and_bound_to_their_store_key(tmp_path: Path) -> None:
    t = transformers_for(ensure_config(str(tmp_path)))["secrets"]
    sealed = t.to_storage(b'{"data":{"p":"aHVudGVyMg=="}}', KEY)
    assert sealed.startswith(AESGCM_PREFIX + b"key1:")
    assert b"aHVudGVyMg" not in sealed
    assert t.from_storage(sealed, KEY) == (b'{"data":{"p":"aHVudGVyMg=="}}', False)
    # the same plaintext twice: different nonces, different values
    assert t.to_storage(b"x", KEY) != t.to_storage(b"x", KEY)
    with pytest.raises(EncryptionError, match="does not decrypt"):
        t.from_storage(sealed, "/registry/secrets/default/other")
    # values stored before encryption was on are read through the identity provider, as stale
    assert t.from_storage(b'{"kind":"Secret"}', KEY) == (b'{"kind":"Secret"}', True)


def test_rotation_reads_old_keys_writes_the_new_one_then_drops_the_old(tmp_path: Path) -> None:
    path = ensure_config(str(tmp_path))
    t = transformers_for(path)["secrets"]
    old = t.to_storage(b"v1", KEY)
    assert rotate(path) == "key2"
    assert _mode(Path(path)) == 0o600
    # the running transformer follows the file: new writes use key2, old values still read (stale)
    new = t.to_storage(b"v2", KEY)
    assert new.startswith(AESGCM_PREFIX + b"key2:")
    assert t.from_storage(old, KEY) == (b"v1", True)
    assert t.from_storage(new, KEY) == (b"v2", False)
    assert drop_old_keys(path) == ["key1"]
    with pytest.raises(EncryptionError, match=r"key 'key1'.*does not hold \(it holds: key2\)"):
        t.from_storage(old, KEY)
    assert drop_old_keys(path) == []


def test_a_missing_key_file_is_one_clear_error(tmp_path: Path) -> None:
    path = ensure_config(str(tmp_path))
    t = transformers_for(path)["secrets"]
    os.unlink(path)
    with pytest.raises(EncryptionError, match="encryption configuration is gone"):
        t.to_storage(b"x", KEY)


def _config(providers: list[object], resources: object = None) -> dict[str, object]:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": resources or ["secrets"], "providers": providers}],
    }


@pytest.mark.parametrize(
    ("providers", "resources", "message"),
    [
        (
            [{"aescbc": {"keys": []}}],
            None,
            r"resources\[0\]\.providers\[0\]: provider 'aescbc' is not supported",
        ),
        ([{"aesgcm": {"keys": []}}], None, r"providers\[0\]\.aesgcm\.keys: at least one key"),
        (
            [{"aesgcm": {"keys": [{"name": "k", "secret": base64.b64encode(b"short").decode()}]}}],
            None,
            r"keys\[0\]\.secret: must be 16, 24 or 32 bytes, got 5",
        ),
        ([{"aesgcm": {"keys": [{"name": "a:b", "secret": "AAAA"}]}}], None, r"keys\[0\]\.name"),
        ([{"identity": {}}], ["*.apps"], "only core resources"),
    ],
)
def test_bad_configurations_name_the_field(providers: list[object], resources: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_config(_config(providers, resources), "enc.yaml")


def test_identity_first_writes_plain_and_still_reads_encrypted(tmp_path: Path) -> None:
    secret = base64.b64encode(os.urandom(32)).decode()
    aes = {"aesgcm": {"keys": [{"name": "k1", "secret": secret}]}}
    path = tmp_path / "enc.yaml"
    path.write_text(yaml.safe_dump(_config([aes, {"identity": {}}])))
    sealed = ResourceTransformer(Keyring(str(path)), "secrets").to_storage(b"v", KEY)
    path.write_text(yaml.safe_dump(_config([{"identity": {}}, aes])))
    t = ResourceTransformer(Keyring(str(path)), "secrets")
    assert t.to_storage(b"v", KEY) == b"v"
    assert t.from_storage(sealed, KEY) == (b"v", True)
    # without identity, plain values are refused, as kube-apiserver does
    path.write_text(yaml.safe_dump(_config([aes])))
    with pytest.raises(EncryptionError, match="no identity provider"):
        ResourceTransformer(Keyring(str(path)), "secrets").from_storage(b"{}", KEY)
