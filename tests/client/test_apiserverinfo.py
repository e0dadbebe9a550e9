"""apiserver.json: the record of a running API server in a cluster's folder (0600), gone with it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from nbkube.client.apiserverinfo import (
    API_INFO_FILE,
    forget_api_server,
    record_api_server,
    running_api_server,
)


def test_recorded_read_and_forgotten(tmp_path: Path) -> None:
    path = Path(record_api_server(str(tmp_path), "https://127.0.0.1:6443"))
    assert path == tmp_path / API_INFO_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert running_api_server(str(tmp_path)) == "https://127.0.0.1:6443"
    forget_api_server(str(tmp_path), "https://127.0.0.1:7000")  # another server's: kept
    assert running_api_server(str(tmp_path)) == "https://127.0.0.1:6443"
    forget_api_server(str(tmp_path), "https://127.0.0.1:6443")
    assert not path.exists() and running_api_server(str(tmp_path)) is None


def test_a_record_of_a_process_that_is_gone_names_no_server(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    (tmp_path / API_INFO_FILE).write_text(
        json.dumps({"url": "https://127.0.0.1:6443", "pid": int(gone.stdout)})
    )
    assert running_api_server(str(tmp_path)) is None


def test_a_malformed_record_names_no_server(tmp_path: Path) -> None:
    for text in (
        "{",
        "[]",
        json.dumps({"url": "http://127.0.0.1:1", "pid": os.getpid()}),
        json.dumps({"url": "https://x"}),
    ):
        (tmp_path / API_INFO_FILE).write_text(text)
        assert running_api_server(str(tmp_path)) is None, text
