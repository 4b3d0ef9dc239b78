"""Whether a stored key state (a pickle) can be trusted by this code: ``STATE_CODE``.

A processor keeps each key's :class:`kappaml.learner.KeyState` pickled in its state store; a
restart loads it back. Loading is safe when the classes in the pickle are the same: those of
River, and kappaml's own in the modules listed in ``PICKLED_MODULES``. So the code stamped on
every state is

* ``STATE_FORMAT``: bumped by hand when KeyState's fields or their meaning change;
* River's version;
* a hash of the source of ``PICKLED_MODULES`` only: a fix elsewhere (a log message in the
  processor, the catalog, the records) leaves restarted processors running on their state.

A test pickles a state of every model spec and checks ``PICKLED_MODULES`` covers every kappaml
module the pickle names.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

__all__ = ["PICKLED_MODULES", "STATE_CODE", "STATE_FORMAT", "state_code"]

STATE_FORMAT = 3  # 2: KeyState.labels (delayed labels); 3: KeyState.background (kappaml/background.py)

# The kappaml modules whose classes (or functions) a pickled KeyState refers to.
PICKLED_MODULES = ("learner", "evaluation", "seen", "drift", "models", "rls", "features", "guard",
                   "pending", "gate", "background")


def state_code(package: Path | None = None, river: str | None = None) -> str:
    """``s<format>-river<version>-<hash of PICKLED_MODULES>`` for the package in ``package``."""
    package = Path(__file__).parent if package is None else package
    digest = hashlib.sha256()
    for name in PICKLED_MODULES:
        digest.update(name.encode() + b"\0" + (package / f"{name}.py").read_bytes())
    river = metadata.version("river") if river is None else river
    return f"s{STATE_FORMAT}-river{river}-{digest.hexdigest()[:12]}"


STATE_CODE = state_code()
