import pytest

from kappaml.dataset import builtin
from kappaml.learner import KeyState, ModelError, learn_step
from kappaml.records import Example, InvalidRecord


def _example(row_id: int, y: float = 200.0) -> Example:
    return Example(id=row_id, key="k", x={"Engine_Size": 2.0}, y=y)


def test_predicts_before_learning_and_skips_duplicates():
    ks = KeyState.new("k", builtin("co2"), "rls", "v1")
    first = learn_step(ks, _example(1), offset=10)
    assert first is not None and first.y_pred == 0.0  # nothing learned yet
    second = learn_step(ks, _example(2), offset=11)
    assert second is not None and second.y_pred != 0.0  # learned from row 1 first
    assert learn_step(ks, _example(1), offset=12) is None
    assert (ks.learned, ks.skipped, ks.last_offset) == (2, 1, 11)


def test_a_model_that_raises_is_a_model_error_and_learns_nothing():
    class Broken:
        def predict_one(self, x):
            raise RuntimeError("boom")

    ks = KeyState(key="k", spec="broken", version="v1", model=Broken())
    with pytest.raises(ModelError, match="RuntimeError: boom") as info:
        learn_step(ks, _example(1), offset=0)
    assert isinstance(info.value, InvalidRecord)  # routed like any bad record
    assert ks.learned == 0 and 1 not in ks.seen


def test_state_from_other_model_code_is_refused_with_a_clear_error():
    from kappaml.learner import IncompatibleState

    ks = KeyState.new("k", builtin("co2"), "rls", "v1")
    ks.check_compatible()
    ks.code = "0123456789abcdef"
    with pytest.raises(IncompatibleState, match="new --model-version"):
        ks.check_compatible()
