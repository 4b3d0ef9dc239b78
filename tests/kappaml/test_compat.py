"""STATE_CODE: what a stored key state must match to be loaded (kappaml/compat.py)."""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import pytest

from kappaml import compat, learner
from kappaml.compat import PICKLED_MODULES, STATE_CODE, state_code
from kappaml.dataset import builtin
from kappaml.drift import DriftConfig
from kappaml.learner import IncompatibleState, KeyState, learn_step
from kappaml.models import SPECS
from kappaml.records import Example

PACKAGE = Path(compat.__file__).parent


class _Names(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.modules: set[str] = set()

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        self.modules.add(module)
        return super().find_class(module, name)


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_every_kappaml_module_in_a_pickled_state_is_hashed(spec):
    co2 = builtin("co2")
    ks = KeyState.new("k", co2, spec, "v1", drift=DriftConfig())
    for i in range(30):
        x = {f.name: (float(i % 4 + 1) if f.kind == "numeric" else ("X" if i % 2 else "Z"))
             for f in co2.features}
        x.update({f.name: 1.0 for f in co2.features if f.kind == "boolean"})
        learn_step(ks, Example(id=i, key="k", x=x, y=100.0 + i, ts=None), offset=i)
    names = _Names(pickle.dumps({spec: ks}))
    names.load()
    ours = {m.split(".", 1)[1] for m in names.modules if m.startswith("kappaml.")}
    assert ours and ours <= set(PICKLED_MODULES), ours - set(PICKLED_MODULES)


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "kappaml"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_fix_outside_the_pickled_modules_keeps_the_code(tmp_path):
    copy = _copy(tmp_path)
    assert state_code(copy) == STATE_CODE
    for name in ("catalog.py", "topics.py", "snapshot.py"):
        path = copy / name
        path.write_text(path.read_text().replace('log.', 'log. ', 1) + "\n# a comment\n")
    assert state_code(copy) == STATE_CODE
    rls = copy / "rls.py"
    rls.write_text(rls.read_text() + "\n# a change to a pickled class's module\n")
    assert state_code(copy) != STATE_CODE
    assert state_code(PACKAGE, river="0.0.1") != STATE_CODE
    assert STATE_CODE.startswith(f"s{compat.STATE_FORMAT}-river")


def test_a_state_of_other_code_is_refused():
    ks = KeyState.new("k", builtin("co2"), sorted(SPECS)[0], "v1")
    ks.check_compatible()
    ks.code = state_code(PACKAGE, river="0.0.1")
    with pytest.raises(IncompatibleState, match="new --model-version"):
        ks.check_compatible()
    assert learner.STATE_CODE == STATE_CODE
