"""Secrets encrypted at rest through the Registry's value transformers, on SQLite and a real etcd.

The done-when of encryption at rest: a Secret's value, written through `create` and through `apply`
(with its last-applied annotation), is found nowhere in the store, neither plain nor in base64; the
Registry still reads it back; rotation and rewrite let the old key go.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbkube.errors import NbkubeError
from nbkube.registry.registry import LAST_APPLIED, Registry
from nbkube.security.encryption import AESGCM_PREFIX, drop_old_keys, ensure_config, rotate, transformers_for
from nbkube.store import open_store

PLAIN = "correct-horse-" + uuid.uuid4().hex  # distinctive: appears nowhere unless leaked
B64 = base64.b64encode(PLAIN.encode()).decode()


def _needles() -> list[bytes]:
    # base64 of the value at each of the three alignments it can take inside a longer base64 text
    return [PLAIN.encode(), B64.encode(), B64[4:-4].encode()]


@pytest.fixture(params=["sqlite-file", pytest.param("etcd", marks=pytest.mark.etcd)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-file":
        return f"sqlite://{tmp_path / 'data' / 'store.db'}"
    return str(request.getfixturevalue("etcd_url"))


@pytest.fixture
def api(store_url: str, tmp_path: Path) -> Iterator[Registry]:
    keys = ensure_config(str(tmp_path / "keys"))
    reg = Registry(open_store(store_url), transformers=transformers_for(keys))
    yield reg
    reg.close()


@pytest.fixture
def ns(api: Registry) -> str:
    """A namespace of this test's own (a shared etcd keeps objects of other tests)."""
    name = "enc-" + uuid.uuid4().hex[:8]
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def _secret(name: str, ns: str, **fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, **fields}


def _raw(api: Registry, ns: str) -> list[bytes]:
    kvs, _rev = api.store.list(f"/registry/secrets/{ns}/")
    return [kv.value for kv in kvs]


def test_no_secret_value_reaches_the_store(api: Registry, ns: str, store_url: str, tmp_path: Path) -> None:
    api.create(_secret("created", ns, data={"password": B64}))
    api.create(_secret("string", ns, stringData={"password": PLAIN}))
    manifest = _secret("applied", ns, data={"password": B64}, metadata={"name": "applied", "namespace": ns})
    ((applied, action),) = api.apply([manifest])
    assert action == "created"
    # the registry reads them back
    assert api.get("Secret", "created", ns)["data"] == {"password": B64}
    assert api.get("Secret", "applied", ns)["data"] == {"password": B64}
    # the last-applied copy carries everything but the data
    last = json.loads(applied["metadata"]["annotations"][LAST_APPLIED])
    assert last["metadata"]["name"] == "applied" and "data" not in last and "stringData" not in last
    # re-applying the same manifest writes nothing
    assert api.apply([manifest])[0][1] == "unchanged"
    raw = _raw(api, ns)
    assert len(raw) == 3 and all(v.startswith(AESGCM_PREFIX + b"key1:") for v in raw)
    for value in raw:
        assert not any(n in value for n in _needles())
    if store_url.startswith("sqlite://"):
        api.store.close()
        folder = Path(store_url[len("sqlite://") :]).parent
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert any(p.name == "store.db" for p in files)
        for path in files:
            content = path.read_bytes()
            assert not any(n in content for n in _needles()), path


def test_any_write_path_strips_data_from_last_applied(api: Registry, ns: str) -> None:
    # what `kubectl apply` sends through the API server: the annotation holds the manifest, data too
    manifest = _secret("kubectl", ns, data={"password": B64})
    annotation = json.dumps(manifest)
    obj = _secret("kubectl", ns, data={"password": B64})
    obj["metadata"] = {"name": "kubectl", "namespace": ns, "annotations": {LAST_APPLIED: annotation}}
    created = api.create(obj)
    assert B64 not in created["metadata"]["annotations"][LAST_APPLIED]
    created["metadata"]["annotations"][LAST_APPLIED] = annotation
    updated = api.update(created)
    assert B64 not in updated["metadata"]["annotations"][LAST_APPLIED]
    patched = api.patch("Secret", "kubectl", ns, {"metadata": {"annotations": {LAST_APPLIED: annotation}}})
    assert B64 not in patched["metadata"]["annotations"][LAST_APPLIED]
    assert patched["data"] == {"password": B64}
    assert not any(n in v for v in _raw(api, ns) for n in _needles())


def test_three_way_merge_of_a_secret_keeps_data_the_manifest_drops(api: Registry, ns: str) -> None:
    """The documented consequence: data is never 'previously applied', so apply never deletes it."""
    api.apply([_secret("m", ns, data={"a": B64}, type="Opaque")])
    api.apply([_secret("m", ns, type="Opaque")])  # `data` dropped from the manifest
    assert api.get("Secret", "m", ns)["data"] == {"a": B64}
    api.apply([_secret("m", ns, data={"b": B64}, type="Opaque")])  # a manifest's data replaces the map
    assert api.get("Secret", "m", ns)["data"] == {"b": B64}


def test_only_secrets_are_encrypted(api: Registry, ns: str) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": ns},
            "data": {"k": "v"},
        }
    )
    (kv,) = api.store.list(f"/registry/configmaps/{ns}/")[0]
    assert kv.value.startswith(b"{")


def test_watch_and_selector_list_see_decrypted_secrets(api: Registry, ns: str) -> None:
    w = api.watch("Secret", ns, label_selector="app=db")
    try:
        obj = _secret("w", ns, data={"p": B64})
        obj["metadata"] = {"name": "w", "namespace": ns, "labels": {"app": "db"}}
        api.create(obj)
        ev = w.next(timeout=5)
        assert ev is not None and ev.type == "ADDED" and ev.object["data"] == {"p": B64}
        api.delete("Secret", "w", ns)
        ev = w.next(timeout=5)
        assert ev is not None and ev.type == "DELETED" and ev.object["metadata"]["name"] == "w"
    finally:
        w.cancel()
    assert api.list("Secret", ns, label_selector="app=db")[0] == []


def test_rotate_rewrite_drop(api: Registry, ns: str, tmp_path: Path) -> None:
    api.create(_secret("r1", ns, data={"p": B64}))
    api.create(_secret("r2", ns, data={"p": B64}))
    path = str(tmp_path / "keys" / "encryption-config.yaml")
    assert rotate(path) == "key2"
    assert api.rewrite("Secret", ns) == (2, 2)
    assert all(v.startswith(AESGCM_PREFIX + b"key2:") for v in _raw(api, ns))
    assert api.rewrite("Secret", ns) == (0, 2)  # nothing stale any more
    assert drop_old_keys(path) == ["key1"]
    assert api.get("Secret", "r1", ns)["data"] == {"p": B64}


def test_undecryptable_secret_is_one_line_naming_it(
    api: Registry, ns: str, store_url: str, tmp_path: Path
) -> None:
    api.create(_secret("lost", ns, data={"p": B64}))
    # another cluster folder's keys: key1 there is a different key
    stranger = Registry(
        open_store(store_url), transformers=transformers_for(ensure_config(str(tmp_path / "other")))
    )
    keyless = Registry(open_store(store_url))
    try:
        with pytest.raises(NbkubeError) as err:
            stranger.get("Secret", "lost", ns)
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(f'secrets "lost" in namespace "{ns}" cannot be decrypted: key \'key1\'')
        with pytest.raises(NbkubeError, match=f'secrets "lost" in namespace "{ns}" cannot be decrypted'):
            stranger.list("Secret", ns)
        with pytest.raises(NbkubeError, match="this process has no encryption keys"):
            keyless.get("Secret", "lost", ns)
        os.unlink(tmp_path / "keys" / "encryption-config.yaml")
        with pytest.raises(NbkubeError, match=r'secrets "lost" .* encryption configuration is gone'):
            api.get("Secret", "lost", ns)
    finally:
        stranger.close()
        keyless.close()


def test_rewrite_encrypts_secrets_stored_before_encryption_and_strips_their_annotation(
    api: Registry, ns: str
) -> None:
    legacy = _secret("old", ns, data={"p": B64})
    legacy["metadata"] = {"name": "old", "namespace": ns, "annotations": {LAST_APPLIED: json.dumps(legacy)}}
    api.store.create(
        f"/registry/secrets/{ns}/old", json.dumps(legacy).encode()
    )  # as an older nbkube wrote it
    assert api.get("Secret", "old", ns)["data"] == {"p": B64}  # read through the identity provider
    assert api.rewrite("Secret", ns) == (1, 1)
    (value,) = _raw(api, ns)
    assert value.startswith(AESGCM_PREFIX) and not any(n in value for n in _needles())
    stored = api.get("Secret", "old", ns)
    assert stored["data"] == {"p": B64} and B64 not in stored["metadata"]["annotations"][LAST_APPLIED]
    assert api.rewrite("Secret", ns) == (0, 1)
