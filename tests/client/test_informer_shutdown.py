"""An informer whose registry closes under it (a cluster's stop() while the API server's informers
still run) ends quietly: no warning, no traceback, its thread gone."""

from __future__ import annotations

import logging
import time

import pytest
from nbk_teststore import make_store

from nbkube.client.informer import InformerFactory
from nbkube.registry.registry import Registry


def test_registry_closing_under_an_informer_is_a_shutdown_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = Registry(make_store())
    factory = InformerFactory(reg)
    informer = factory.informer("Role")
    informer.start()
    assert informer.wait_synced(10)
    thread = informer._thread
    assert thread is not None
    with caplog.at_level(logging.DEBUG, logger="nbkube"):
        assert not reg.closed
        reg.close()
        assert reg.closed
        deadline = time.monotonic() + 10
        while thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not thread.is_alive()  # it ended by itself, before anyone stopped it
    factory.stop_all()
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == []
