"""gctune: thresholds raised only over CPython's defaults."""

from __future__ import annotations

import gc

from nbkube.gctune import SCALE_THRESHOLDS, tune_for_scale


def test_raises_default_thresholds_and_keeps_a_processs_own() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert tune_for_scale() and gc.get_threshold() == SCALE_THRESHOLDS
        assert not tune_for_scale()  # already tuned: nothing to do
        gc.set_threshold(1000, 5, 5)
        assert not tune_for_scale() and gc.get_threshold() == (1000, 5, 5)
    finally:
        gc.set_threshold(*saved)
