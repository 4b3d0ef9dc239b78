from hypothesis import given
from hypothesis import strategies as st

from kappaml.seen import SeenIds


@given(st.lists(st.one_of(st.integers(-50, 50), st.text(max_size=3)), max_size=200))
def test_seen_ids_behaves_like_a_set(ids):
    seen, reference = SeenIds(), set()
    for row_id in ids:
        assert (row_id in seen) == (row_id in reference)
        seen.add(row_id)
        reference.add(row_id)
    assert len(seen) == len(reference)
    for probe in range(-52, 53):
        assert (probe in seen) == (probe in reference)


def test_increasing_ids_cost_one_interval():
    seen = SeenIds()
    for row_id in range(1, 100_001):
        seen.add(row_id)
    assert seen.intervals == 1 and len(seen) == 100_000


@given(st.lists(st.one_of(st.integers(0, 60), st.text(max_size=3)), max_size=100))
def test_seen_ids_json_round_trip(ids):
    seen = SeenIds()
    for row_id in ids:
        seen.add(row_id)
    assert SeenIds.from_json(seen.to_json()) == seen


def test_row_ids_are_unique_per_stream_and_survive_json() -> None:
    seen = SeenIds()
    for i in range(1, 101):
        seen.scope("co2@aaaa").add(i)
    seen.add(7)  # records naming no stream
    assert 5 in seen.scope("co2@aaaa") and 5 not in seen.scope("co2@bbbb") and 5 not in seen
    assert 7 in seen and 7 not in seen.scope("co2@bbbb")
    assert len(seen) == 101 and "co2@aaaa" in seen.streams
    back = SeenIds.from_json(seen.to_json())
    assert back == seen and 100 in back.scope("co2@aaaa")
    assert SeenIds.from_json({"starts": [1], "ends": [3], "other": []}).streams == []


def test_learn_step_skips_a_row_id_only_within_its_stream() -> None:
    from kappaml.dataset import builtin
    from kappaml.learner import KeyState, learn_step
    from kappaml.records import Example

    ds = builtin("co2")
    state = KeyState.new("__all__", ds, "rls", "v1")
    x = {f.name: (1.0 if f.kind != "categorical" else "X") for f in ds.features}
    a, b = Example(1, "__all__", x, 200.0, stream="co2@a"), Example(1, "__all__", x, 210.0, stream="co2@b")
    assert learn_step(state, a, 0) is not None
    assert learn_step(state, b, 1) is not None  # another file's row 1: new data
    assert learn_step(state, a, 2) is None  # the first file's row 1 again: a duplicate
    assert (state.learned, state.skipped) == (2, 1)
