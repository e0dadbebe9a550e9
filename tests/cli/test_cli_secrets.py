"""`nbkube secrets rotate-key | rewrite --drop-old-keys` on a cluster's SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nbkube.cli import main
from nbkube.cluster import registry_for_url
from nbkube.security.encryption import AESGCM_PREFIX


def _keys(folder: Path) -> list[str]:
    doc = yaml.safe_load((folder / "encryption-config.yaml").read_text())
    return [k["name"] for k in doc["resources"][0]["providers"][0]["aesgcm"]["keys"]]


def test_rotate_then_rewrite_lets_the_old_key_go(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite://{tmp_path / 'store.db'}"
    secret = tmp_path / "s.yaml"
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {p: hunter2}\n")
    assert main(["--store", url, "apply", "-f", str(secret)]) == 0
    assert main(["--store", url, "secrets", "rotate-key"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("key2 encrypts Secrets from now on")
    assert _keys(tmp_path) == ["key2", "key1"]
    assert main(["--store", url, "secrets", "rewrite", "--drop-old-keys"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("rewrote 1 of 1 secrets") and out[1] == "dropped keys: key1"
    assert _keys(tmp_path) == ["key2"]
    api = registry_for_url(url)
    try:
        assert api.get("Secret", "s", "default")["data"] == {"p": "aHVudGVyMg=="}
        (kv,) = api.store.list("/registry/secrets/")[0]
        assert kv.value.startswith(AESGCM_PREFIX + b"key2:")
    finally:
        api.close()


def test_a_store_without_a_cluster_folder_has_no_keys_to_rotate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", "sqlite://:memory:", "secrets", "rotate-key"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no encryption keys to manage" in err[0]
