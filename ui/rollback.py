"""Rollback from the UI: a spec serves again on every partition, behind an explicit confirmation.

The button writes what ``python -m processor rollback --to SPEC`` writes (``ui.promote.rollback``,
``kappaml.lineup.rollback_promotion``): a promotion control record with reason ``rollback`` on
every raw partition, in one transaction. With ``--promotion auto`` it also holds the gate of
every partition until the next manual promotion.
"""

from __future__ import annotations

import streamlit as st

from ui.promote import rollback, show_outcome
from ui.settings import UISettings

__all__ = ["rollback_control"]


def _on_rollback(settings: UISettings, version: str) -> None:
    # As for Promote: the callback runs before the rerun and clears the confirmation, so
    # every rollback needs its own tick.
    spec = st.session_state.get("rollback_spec")
    if not st.session_state.get("rollback_confirm") or not spec:
        st.session_state["rollback_outcome"] = None
        return
    st.session_state["rollback_confirm"] = False
    st.session_state["rollback_outcome"] = rollback(settings.kafka, settings.topics.raw, version, spec)


def rollback_control(settings: UISettings, version: str, specs: list[str], first: int = 0) -> None:
    """Pick the spec to serve again (``first`` offered), tick the confirmation, press Rollback."""
    st.subheader("Roll back")
    if not specs:
        st.info(f"No spec of version `{version}` is known yet: the comparison records name them.")
    else:
        spec = st.selectbox("Spec to serve again", specs, index=first, key="rollback_spec",
                            help="offered first: the spec that served before the gate's newest promotion")
        confirmed = st.checkbox(
            f"I understand that `{spec}` will serve version `{version}` on every partition of "
            f"`{settings.topics.raw}` from the next message on, and that the promotion gate "
            "(`--promotion auto`) then holds until the next manual promotion.",
            key="rollback_confirm")
        st.button("Rollback", type="primary", disabled=not confirmed, key="rollback_button",
                  on_click=_on_rollback, args=(settings, version))
    show_outcome(settings, st.session_state.get("rollback_outcome"), "Rollback to")
