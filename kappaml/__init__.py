"""kappaml's shared domain code: dataset declarations, records, models, learning, topics."""

import warnings

# Quix Streams imports authlib's httpx client, which warns at every program start; the
# warning is about authlib's own dependency, nothing a kappaml user can act on.
# authlib installs an "always" filter for its warnings when first imported, ahead of any
# filter set before: import it first so ours comes after, i.e. first in the list.
try:
    import authlib.deprecate  # noqa: F401
except ImportError:  # pragma: no cover - authlib is only there with Quix Streams' extras
    pass
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
