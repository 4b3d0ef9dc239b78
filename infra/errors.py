"""Errors that ``python -m infra`` turns into one clear line and a non-zero exit."""


class InfraError(RuntimeError):
    """Something the user can act on: a missing tool, a taken port, a broker that won't start."""
