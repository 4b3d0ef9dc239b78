"""Which challengers a line-up runs: the ``--challengers`` value, and ``--promotion auto``'s default set.

Kept free of River and Kafka imports: the Spark replay's settings parse ``--challengers`` here
before anything heavy is loaded. :mod:`kappaml.lineup` re-exports these names.
"""

from __future__ import annotations

__all__ = ["AUTO_SPECS", "auto_challengers", "resolve_challengers"]

# What ``--promotion auto`` runs when no ``--challengers`` are given (issue 19): for a numeric
# target (every kappaml data set), one spec of each family the gate can choose between: the
# exact online ridge (`rls`, the default champion: best on stationary data, no forgetting), a
# River tree (`hoeffding`: adaptive, replaces subtrees whose error rises, non-linear) and SGD
# linear regression (`linear`: forgets at its learning rate, so it follows a change fastest).
# Measured cost per message and served RMSE: bench/bench_adapt.py, docs/lifecycle.md.
AUTO_SPECS: tuple[str, ...] = ("rls", "hoeffding", "linear")


def auto_challengers(champion: str) -> tuple[str, ...]:
    """The default challengers of ``--promotion auto``: :data:`AUTO_SPECS` without the champion."""
    return tuple(spec for spec in AUTO_SPECS if spec != champion)


def resolve_challengers(text: str, promotion: str, champion: str) -> tuple[str, ...]:
    """The challengers of a ``--challengers`` value (comma-separated specs).

    Empty: none with ``--promotion manual`` (today's default, unchanged), the default set
    (:func:`auto_challengers`) with ``auto``: a gate without challengers has nothing to
    judge. ``none`` says "no challengers" explicitly, also with ``auto``.
    """
    specs = tuple(s.strip() for s in text.split(",") if s.strip())
    if specs == ("none",):
        return ()
    if not specs and promotion == "auto":
        return auto_challengers(champion)
    return specs
