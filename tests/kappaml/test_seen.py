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
