"""nbkube/logutil.py: one line per expected failure, rate-limited per cause; a traceback for a bug;
nothing on stderr from a library logger unless asked."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys

import pytest

from nbkube.errors import Conflict, NotFound, StoreUnavailable
from nbkube.logutil import log_failure, show_logs, transient_cause


def test_causes() -> None:
    assert transient_cause(StoreUnavailable("etcd at x is unreachable")) == "store unavailable"
    assert transient_cause(Conflict("the object has been modified")) == "conflict"
    assert transient_cause(NotFound('pods "a" not found')) == "not found"
    assert transient_cause(OSError(errno.ENOSPC, "No space left on device")) == "disk full"
    assert transient_cause(ConnectionError("Role watch was cancelled")) == "connection"
    assert transient_cause(KeyError("spec")) is None
    assert transient_cause(OSError(errno.EACCES, "denied")) is None


def test_transient_failures_are_one_line_each_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("nbkube.test.logutil.rate")
    with caplog.at_level(logging.INFO, logger="nbkube"):
        for i in range(50):
            log_failure(logger, "Pod informer: list/watch", StoreUnavailable("etcd unreachable"), detail=str(i))
            log_failure(logger, "Pod informer: list/watch", OSError(errno.ENOSPC, "No space left on device"))
    records = [r for r in caplog.records if r.name == logger.name]
    assert [r.getMessage() for r in records] == [
        "Pod informer: list/watch (0) failed (store unavailable): etcd unreachable",
        "Pod informer: list/watch failed (disk full): [Errno 28] No space left on device",
    ]
    assert all(r.exc_info is None and r.levelno == logging.WARNING for r in records)


def test_after_the_window_the_line_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("nbkube.test.logutil.window")
    with caplog.at_level(logging.INFO, logger="nbkube"):
        log_failure(logger, "sync", Conflict("modified"), window=0.0)
        log_failure(logger, "sync", Conflict("modified"), window=3600.0)  # held back
        log_failure(logger, "sync", Conflict("modified"), window=0.0)
    messages = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert messages == [
        "sync failed (conflict): modified",
        "sync failed (conflict): modified [1 more like it since the last line]",
    ]


def test_a_bug_keeps_its_traceback_every_time(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("nbkube.test.logutil.bug")
    with caplog.at_level(logging.INFO, logger="nbkube"):
        for _ in range(2):
            try:
                {}["spec"]
            except KeyError as exc:
                log_failure(logger, "reconcile", exc, detail="default/web")
    records = [r for r in caplog.records if r.name == logger.name]
    assert len(records) == 2
    assert all(r.levelno == logging.ERROR and r.exc_info is not None for r in records)
    assert records[0].getMessage() == "reconcile (default/web) failed: KeyError: 'spec'"


def test_library_logs_stay_off_stderr_until_asked() -> None:
    code = (
        "import logging, threading\n"
        "import nbkube\n"
        "from nbkube.logutil import show_logs\n"
        "t = threading.Thread(target=lambda: logging.getLogger('nbkube.node.agent').warning('quiet one'))\n"
        "t.start(); t.join()\n"
        "show_logs()\n"
        "logging.getLogger('nbkube.node.agent').warning('asked for')\n"
        "logging.getLogger('nbkube.node.agent').info('below the level')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "asked for\n"


def test_show_logs_follows_sys_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    handler = show_logs("WARNING")
    try:
        logging.getLogger("nbkube.test.logutil.show").warning("to the captured stderr")
        assert "to the captured stderr" in capsys.readouterr().err
    finally:
        logging.getLogger("nbkube").removeHandler(handler)
