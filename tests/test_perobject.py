"""PerObject: one value per live object, made once, forgotten with the object."""

from __future__ import annotations

import gc
import threading

from nbkube.perobject import PerObject


class _Owner:
    pass


def test_one_value_per_owner_made_once_even_when_threads_race() -> None:
    made: list[_Owner] = []
    gate = threading.Barrier(8)

    def make(owner: _Owner) -> list[_Owner]:
        made.append(owner)
        return [owner]

    values: PerObject[_Owner, list[_Owner]] = PerObject(make)
    owner = _Owner()
    got: list[list[_Owner]] = []

    def ask() -> None:
        gate.wait()
        got.append(values.get(owner))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [owner]
    assert all(g is got[0] for g in got)
    assert values.get(_Owner()) is not got[0]


def test_peek_and_pop_and_the_value_goes_with_its_owner() -> None:
    values: PerObject[_Owner, dict[str, int]] = PerObject(lambda _o: {})
    owner = _Owner()
    assert values.peek(owner) is None
    first = values.get(owner)
    assert values.peek(owner) is first
    assert values.pop(owner) is first
    assert values.peek(owner) is None and values.pop(owner) is None
    values.get(owner)
    del owner
    gc.collect()
    assert len(values._values) == 0


def test_an_owner_that_cannot_be_weakly_referenced_has_no_value_to_peek_or_pop() -> None:
    values: PerObject[object, int] = PerObject(lambda _o: 1)
    assert values.peek(3) is None
    assert values.pop(3) is None
