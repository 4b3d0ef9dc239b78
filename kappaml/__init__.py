"""kappaml's shared domain code: dataset declarations, records, models, learning, topics."""

import sys
import warnings

# Run outside the venv (e.g. the system python), the first missing dependency would end the
# program with a traceback; say what to do instead, in one line.
try:
    import confluent_kafka  # noqa: F401
    import orjson  # noqa: F401
    import structlog  # noqa: F401
except ModuleNotFoundError as _missing:  # pragma: no cover - exercised by a subprocess test
    raise SystemExit(
        f"error: {_missing.name!r} is not installed for {sys.executable}: kappaml's commands run inside "
        "its venv: `. .venv/bin/activate` first, or call `.venv/bin/python -m ...` (`make setup` creates it)"
    ) from None

# Quix Streams imports authlib's httpx client, which warns at every program start; the
# warning is about authlib's own dependency, nothing a kappaml user can act on.
# authlib installs an "always" filter for its warnings when first imported, ahead of any
# filter set before: import it first so ours comes after, i.e. first in the list.
try:
    import authlib.deprecate  # noqa: F401
except ImportError:  # pragma: no cover - authlib is only there with Quix Streams' extras
    pass
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
