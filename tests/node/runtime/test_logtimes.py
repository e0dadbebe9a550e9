"""Times per log line from the reaper's growth notes (nbkube/node/runtime/logtimes.py)."""

from __future__ import annotations

from typing import Any

from nbkube.node.runtime import logtimes


def test_each_line_takes_the_first_note_covering_its_end(tmp_path: Any) -> None:
    log = str(tmp_path / "c.log")
    with open(log, "wb") as f:
        f.write(b"a\nb\n")
    assert logtimes.note_growth(log, 0, 100.0) == 4
    assert logtimes.note_growth(log, 4, 150.0) == 4  # no growth, no note
    with open(log, "ab") as f:
        f.write(b"c\nd")  # "d" unfinished and not yet noted
    assert logtimes.note_growth(log, 4, 200.0) == 7
    with open(log, "ab") as f:
        f.write(b"\ne\n")
    notes = logtimes.load(log)
    assert notes == ([4, 7], [100.0, 200.0])
    with open(log, "rb") as f:
        lines = logtimes.timed_lines(f.read(), 0, notes, now=300.0)
    assert lines == [(100.0, b"a\n"), (100.0, b"b\n"), (200.0, b"c\n"), (300.0, b"d\n"), (300.0, b"e\n")]
    assert logtimes.render(lines, since=200.0, timestamps=False) == "c\nd\ne\n"
    assert logtimes.render(lines[:1], since=None, timestamps=True) == "1970-01-01T00:01:40.000000000Z a\n"


def test_a_followed_stream_is_stamped_at_line_starts_only() -> None:
    out = "".join(logtimes.stamp_stream(iter(["x\ny", "z\n"]), "old\n"))
    lines = out.splitlines()
    assert lines[0] == "old"
    assert [line.split(" ", 1)[1] for line in lines[1:]] == ["x", "yz"]
    assert all(line.split(" ", 1)[0].endswith("Z") for line in lines[1:])
