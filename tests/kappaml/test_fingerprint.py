"""The canonical state hash: what must and must not change it."""

from __future__ import annotations

import collections
import functools
import os
import pickle
import random
import subprocess
import sys
import threading

import numpy as np
import pytest

from kappaml.fingerprint import fingerprint


class Box:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


class WithCache:
    def __init__(self) -> None:
        self.w = [1.0, 2.0]
        self._cache: object = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": None}


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: object, b: object) -> None:
        self.a, self.b = a, b


def test_is_hex_sha256_and_stable() -> None:
    value = fingerprint({"w": [1.0, 2.5], "n": 3})
    assert len(value) == 64 and int(value, 16) >= 0
    assert fingerprint({"w": [1.0, 2.5], "n": 3}) == value


def test_dict_insertion_order_and_set_order_do_not_matter() -> None:
    a = {"x": 1.0, "y": 2.0, 3: "z", ("t", 1): None}
    b = dict(reversed(list(a.items())))
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint({"s": {"b", "a", "c"}}) == fingerprint({"s": {"c", "a", "b"}})
    assert fingerprint(Box(a=1, b=2)) == fingerprint(Box(b=2, a=1))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (0.1 + 0.2, 0.3),  # exact bits, not repr rounding
        (0.0, -0.0),
        (1, 1.0),
        (True, 1),
        ("1", 1),
        (b"a", "a"),
        ([1.0, 2.0], (1.0, 2.0)),
        ({"a": 1.0}, {"a": 1.0, "b": 0.0}),
        ([1.0, 2.0], [2.0, 1.0]),  # sequences keep their order
        (np.array([1.0, 2.0]), np.array([1.0, 2.0], dtype=np.float32)),
        (np.zeros((2, 3)), np.zeros((3, 2))),
        (np.eye(3), np.eye(3) * (1.0 + 2**-52)),  # one ulp
        (Box(a=1.0), {"a": 1.0}),
        (random.Random(1), random.Random(2)),
        (collections.deque([1, 2], maxlen=3), collections.deque([1, 2], maxlen=4)),
        (collections.defaultdict(int), collections.defaultdict(float)),
        (Slotted(1, 2), Slotted(2, 1)),
        (np.float64(1.0), 1.0),
    ],
)
def test_distinct_states_give_distinct_fingerprints(left: object, right: object) -> None:
    assert fingerprint(left) != fingerprint(right)


def test_arrays_hash_by_content_and_layout() -> None:
    a = np.arange(12.0).reshape(3, 4)
    assert fingerprint(a) == fingerprint(a.copy())
    assert fingerprint(a[:, ::2]) == fingerprint(np.ascontiguousarray(a[:, ::2]))
    # The memory order changes BLAS's rounding, so it is state.
    assert fingerprint(np.asfortranarray(a)) != fingerprint(a)
    objs = np.array([{"k": 1.0}, "s"], dtype=object)
    assert fingerprint(objs) == fingerprint(np.array([{"k": 1.0}, "s"], dtype=object))


def test_shared_references_and_cycles_are_structural() -> None:
    shared = [1.0]
    same = Box(a=shared, b=shared)
    twins = Box(a=[1.0], b=[1.0])
    assert fingerprint(same) != fingerprint(twins)  # sharing is state (pickle keeps it)
    assert fingerprint(same) == fingerprint(pickle.loads(pickle.dumps(same)))
    loop: list = [1.0]
    loop.append(loop)
    assert fingerprint(loop) == fingerprint(pickle.loads(pickle.dumps(loop)))


def test_deep_structures_do_not_hit_the_recursion_limit() -> None:
    node: dict = {"leaf": 1.0}
    for i in range(5 * sys.getrecursionlimit()):
        node = {"child": node, "i": i}
    assert len(fingerprint(node)) == 64


def test_getstate_exclusions_apply() -> None:
    a, b = WithCache(), WithCache()
    b._cache = object()  # noqa: SLF001 - the attribute __getstate__ leaves out
    assert fingerprint(a) == fingerprint(b)
    b.w.append(3.0)
    assert fingerprint(a) != fingerprint(b)


def test_slots_functions_and_partials() -> None:
    assert fingerprint(Slotted(1, [2.0])) == fingerprint(Slotted(1, [2.0]))
    assert fingerprint(functools.partial(max, 1)) == fingerprint(functools.partial(max, 1))
    assert fingerprint(functools.partial(max, 1)) != fingerprint(functools.partial(min, 1))
    assert fingerprint(collections.defaultdict(functools.partial(collections.defaultdict, float)))


def test_defaultdict_entries_equal_to_a_scalar_default_are_not_state() -> None:
    read = collections.defaultdict(float, {"a": 1.5})
    _ = read["b"]  # a read inserts 0.0
    assert fingerprint(read) == fingerprint(collections.defaultdict(float, {"a": 1.5}))
    assert fingerprint(read) != fingerprint(collections.defaultdict(float, {"a": 1.5, "b": 1.0}))
    assert fingerprint(read) != fingerprint({"a": 1.5})  # the factory is part of the state
    # Object defaults are state: an inserted default may later be mutated in place.
    objs = collections.defaultdict(list)
    _ = objs["k"]
    assert fingerprint(objs) != fingerprint(collections.defaultdict(list))


def test_unpicklable_state_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint(Box(lock=threading.Lock()))


def test_same_value_in_a_process_with_another_hash_seed() -> None:
    """Set and dict orders that depend on PYTHONHASHSEED must not leak into the hash."""
    code = (
        "from kappaml.fingerprint import fingerprint;"
        "s = {'alpha', 'beta', 'gamma', 'delta', ('t', 'u'), frozenset({'p', 'q'})};"
        "d = {k: 1.0 for k in s};"
        "print(fingerprint([s, d]))"
    )
    here = {"alpha", "beta", "gamma", "delta", ("t", "u"), frozenset({"p", "q"})}
    expected = fingerprint([here, {k: 1.0 for k in here}])
    for seed in ("1", "2", "3"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        assert out.stdout.strip() == expected
