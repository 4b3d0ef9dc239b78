"""The one error type the replay turns into a single clear line and a non-zero exit."""

__all__ = ["ReplayError"]


class ReplayError(RuntimeError):
    """Something the user can act on: no broker, no topic, an empty topic, no connector."""
