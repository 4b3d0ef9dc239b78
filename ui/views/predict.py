"""Predict: a form generated from the dataset declaration, answered by the newest model snapshot."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from kappaml.records import InvalidRecord
from ui import live
from ui.charts import with_unit
from ui.form import NONE_OF_THESE, FormField, form_fields, to_example
from ui.snapshots import choices, load_model, pick

LATEST = "(newest snapshot)"

settings = live.settings()
dataset = live.dataset(settings)
unit = dataset.units.get(dataset.target)
fields = form_fields(dataset)

st.title("Predict")
st.caption(
    f"Fill in the features of one `{dataset.name}` example to predict `{dataset.target}` with a model "
    f"snapshot from `{settings.topics.models}` (the live processor publishes one about every second)."
)


@st.fragment(run_every=1)
def watch() -> None:
    """Rerun the whole page when Kafka or the snapshots come or go, so the page recovers by itself."""
    v = live.view(settings)
    state = (v.status.checked_at > 0, v.status.connected, v.loaded, bool(v.snapshots))
    previous = st.session_state.get("predict_watch")
    st.session_state["predict_watch"] = state
    if previous is not None and previous != state:
        st.rerun(scope="app")


def _input(field: FormField) -> Any:
    key = f"predict_{field.name}"
    label = with_unit(field.label, field.unit)
    if field.kind == "numeric":
        return st.number_input(label, value=None, format="%g", placeholder="a number", key=key)
    if field.kind == "boolean":
        return st.checkbox(label, key=key)
    if field.kind == "choice":
        options = [lbl for lbl, _n in field.options] + [NONE_OF_THESE]
        return st.radio(label, options, horizontal=True, key=key)
    return st.text_input(label, key=key, placeholder="a value")


def _show(result: dict[str, Any]) -> None:
    st.metric(with_unit(f"Predicted {dataset.target}", unit), f"{result['prediction']:.4g}")
    st.markdown(f"Model version **{result['version']}** (`{result['spec']}`, {result['origin']}) "
                f"for key `{result['key']}`  \nFingerprint `{result['fingerprint']}`")
    st.dataframe(pd.DataFrame([{
        "learned examples": result["learned"], "last offset learned": result["offset"],
        "partition": result["partition"],
        "snapshot created (UTC)": pd.to_datetime(result["created_at"], unit="ms", utc=True),
    }]), hide_index=True)
    with st.expander("Features used"):
        st.json(result["x"])


def body() -> None:
    view = live.view(settings)
    if not live.ready(view, settings):
        return
    available, problems = choices(view.snapshots)
    for problem in problems:
        st.warning(f"Unreadable snapshot skipped: {problem}")
    if not available:
        live.explain_no_data(settings, "model snapshots")
        return
    versions = [LATEST, *sorted({c.ref.version for c in available})]
    with st.form("predict_form"):
        version = st.selectbox("Model version", versions, key="predict_version",
                               help="Default: the most recently created live snapshot of the key; "
                                    "labels ending in @replay are a Spark replay's models.")
        columns = st.columns(3)
        values = {}
        for i, field in enumerate(fields):
            with columns[i % 3]:
                values[field.name] = _input(field)
        submitted = st.form_submit_button("Predict", type="primary")
    if submitted:
        st.session_state.pop("predict_result", None)
        try:
            example = to_example(dataset, fields, values)
        except InvalidRecord as exc:
            where = f"**{exc.column}**: " if exc.column else ""
            st.error(f"Please correct the input. {where}{exc.reason}.")
            return
        model_key = example.key
        choice = pick(available, version, model_key, latest=LATEST)
        if choice is None:
            known = sorted({c.ref.key for c in available if version in (LATEST, c.ref.version)})
            shown = ", ".join(f"`{k}`" for k in known[:20]) or "none"
            st.error(f"No model snapshot for key `{model_key}` in {version}. Keys with a model: {shown}.")
            return
        try:
            snapshot = load_model(choice.ref)
        except ValueError as exc:
            st.error(f"Snapshot {choice.ref.version}/{choice.ref.key} cannot be loaded: {exc}")
            return
        raw = snapshot.model.predict_one(example.x)
        if raw is None or not math.isfinite(float(raw)):
            st.error(f"The model answered {raw!r}: it has not learned enough to predict yet.")
            return
        st.session_state["predict_result"] = {
            "prediction": float(raw), "version": snapshot.version, "spec": snapshot.spec,
            "origin": snapshot.origin, "key": snapshot.key,
            "fingerprint": snapshot.fingerprint, "learned": snapshot.learned, "offset": snapshot.offset,
            "partition": snapshot.partition, "created_at": snapshot.created_at, "x": example.x,
        }
    result = st.session_state.get("predict_result")
    if result is not None:
        _show(result)


watch()
body()
