"""kappaml's shared domain code: dataset declarations, records, models, learning, topics."""

import warnings

# Quix Streams imports authlib's httpx client, which warns at every program start; the
# warning is about authlib's own dependency, nothing a kappaml user can act on.
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
