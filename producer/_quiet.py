"""Silence authlib's import-time warning about httpx (pulled in by Quix Streams): nothing to act on.

authlib installs an "always" filter for its own warnings when it is imported, so the ignore
filter must be added after that import. (Quix's spawned source process imports Quix Streams
before this package, so it still prints the warning once.)
"""

from __future__ import annotations

import warnings

try:
    import authlib.deprecate  # noqa: F401
except ImportError:  # pragma: no cover - a Quix Streams without authlib
    pass
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
