"""Promotion from the UI: a challenger spec becomes the champion, behind an explicit confirmation.

The UI writes the same control record as ``python -m processor promote SPEC`` (and, for the
Rollback button of ``ui/rollback.py``, as ``python -m processor rollback --to SPEC``), through
``kappaml.lineup.publish_promotion``: one record per raw partition, in one transaction.
The processors apply it from the next record of each partition on; the page then shows the
"promotion" metrics records they write.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass

import streamlit as st
from confluent_kafka import KafkaError, KafkaException

from kappaml.kafka import KafkaSettings, KafkaUnavailable
from kappaml.lineup import Promotion, publish_promotion, rollback_promotion
from kappaml.logging import get_logger
from ui.settings import UISettings

__all__ = ["PromoteOutcome", "promote", "promote_control", "publish", "rollback"]

log = get_logger(__name__)

# How long a click may wait on Kafka: the page is blocked meanwhile.
TIMEOUT = 10.0


@dataclass(frozen=True)
class PromoteOutcome:
    promotion: Promotion
    offsets: dict[int, int] | None = None  # partition -> offset of the control record
    error: str | None = None  # one line: what went wrong


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        text = exc.args[0].str()
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _by() -> str:
    return f"ui {getpass.getuser()}@{socket.gethostname()}"


def publish(kafka: KafkaSettings, raw_topic: str, promotion: Promotion,
            timeout: float = TIMEOUT) -> PromoteOutcome:
    """Publish a control record to every raw partition; never raises: a failure is the
    outcome's one-line ``error``."""
    what = {"version": promotion.version, "spec": promotion.spec, "reason": promotion.reason}
    try:
        offsets = publish_promotion(kafka, raw_topic, promotion, timeout=timeout)
    except (KafkaUnavailable, KafkaException) as exc:
        log.warning("promotion failed", **what, error=_one_line(exc))
        return PromoteOutcome(promotion, error=_one_line(exc))
    except Exception as exc:  # a button must not print a traceback into the page; the log keeps it
        log.exception("promotion failed unexpectedly", **what)
        return PromoteOutcome(promotion, error=f"{type(exc).__name__}: {_one_line(exc)}")
    log.info("promotion published", **what, offsets=offsets, id=promotion.id)
    return PromoteOutcome(promotion, offsets=offsets)


def promote(kafka: KafkaSettings, raw_topic: str, version: str, spec: str,
            timeout: float = TIMEOUT) -> PromoteOutcome:
    """What ``python -m processor promote SPEC`` writes."""
    return publish(kafka, raw_topic, Promotion(version=version, spec=spec, by=_by()), timeout)


def rollback(kafka: KafkaSettings, raw_topic: str, version: str, spec: str,
             timeout: float = TIMEOUT) -> PromoteOutcome:
    """What ``python -m processor rollback --to SPEC`` writes (``kappaml.lineup.rollback_promotion``)."""
    return publish(kafka, raw_topic, rollback_promotion(version, spec, by=_by()), timeout)


def _on_promote(settings: UISettings, version: str) -> None:
    # A button callback runs before the rerun, so it may clear the confirmation: every
    # promotion needs its own tick.
    spec = st.session_state.get("promote_spec")
    if not st.session_state.get("promote_confirm") or not spec:
        st.session_state["promote_outcome"] = None
        return
    st.session_state["promote_confirm"] = False
    st.session_state["promote_outcome"] = promote(settings.kafka, settings.topics.raw, version, spec)


def promote_control(settings: UISettings, version: str, candidates: list[str]) -> None:
    """Pick a spec, tick the confirmation, press the button; then the offsets or the error."""
    st.subheader("Promote a challenger")
    if not candidates:
        st.info(f"No challenger to promote in version `{version}`: start the processor with "
                "`--challengers SPEC[,SPEC]` to run specs beside the champion.")
    else:
        spec = st.selectbox("Spec to promote", candidates, key="promote_spec")
        confirmed = st.checkbox(
            f"I understand that `{spec}` will serve version `{version}` on every partition of "
            f"`{settings.topics.raw}`, from the next message on, until another promotion.",
            key="promote_confirm")
        st.button("Promote", type="primary", disabled=not confirmed, key="promote_button",
                  on_click=_on_promote, args=(settings, version))
    show_outcome(settings, st.session_state.get("promote_outcome"), "Promotion of")


def show_outcome(settings: UISettings, outcome: PromoteOutcome | None, action: str) -> None:
    """What the last button press wrote (the offsets per partition) or why it failed."""
    if outcome is None:
        return
    what = f"`{outcome.promotion.spec}` in version `{outcome.promotion.version}`"
    if outcome.error is not None:
        st.error(f"{action} {what} failed: {outcome.error}")
    else:
        offsets = ", ".join(f"partition {p} @ {o}" for p, o in sorted((outcome.offsets or {}).items()))
        st.success(f"{action} {what} written to `{settings.topics.raw}`: {offsets}. The processors "
                   "apply it from the next message of each partition.")
