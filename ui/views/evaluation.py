"""Evaluation: prequential RMSE, MAE and R², cumulative and rolling, per key and overall, live."""

from __future__ import annotations

import streamlit as st

from kappaml.dataset import GLOBAL_KEY
from ui import live
from ui.charts import XAxis, metric_chart
from ui.frames import latest_metrics_frame, metrics_frame, model_keys
from ui.store import OVERALL_KEY

settings = live.settings()
dataset = live.dataset(settings)
unit = dataset.units.get(dataset.target)

st.title("Evaluation")
st.caption(
    f"Prequential (test-then-train) errors of the online models predicting `{dataset.target}`: "
    "every prediction is scored before the model learns the example. Solid lines are cumulative, "
    "dashed lines the rolling window; every model version (live and replay) shares one chart."
)


def _label(key: str) -> str:
    if key == OVERALL_KEY:
        return "overall (all keys)"
    return f"{key} (the global model)" if key == GLOBAL_KEY else key


@st.fragment(run_every=1)
def body() -> None:
    view = live.view(settings)
    if not live.ready(view, settings):
        return
    keys = model_keys(view.metrics.keys())
    if not keys:
        live.explain_no_data(settings, "metrics")
        return
    # A data set without a key column has one global model: its per-key record is the overall
    # figure with rolling values and R² on top, so it is the better first view.
    default = keys.index(GLOBAL_KEY) if GLOBAL_KEY in keys and len(keys) <= 2 else 0
    left, middle, right = st.columns([2, 1, 1])
    key = left.selectbox("Model key", keys, index=default, format_func=_label, key="eval_key")
    x: XAxis = middle.radio("Horizontal axis", ["messages", "time"], horizontal=True, key="eval_x",
                     format_func=lambda v: "messages scored" if v == "messages" else "time")
    log = right.toggle("Log scale for RMSE/MAE", value=True, key="eval_log")
    frame = metrics_frame(view.metrics, key)
    st.dataframe(latest_metrics_frame(view.metrics, key), hide_index=True, width="stretch")
    if frame.empty:
        st.info(f"No metric values for {_label(key)} yet (R² needs at least two scored examples).")
        return
    if key == OVERALL_KEY and not (frame["window"] == "rolling").any():
        st.caption("The processor's overall record carries cumulative figures; pick a key for rolling ones.")
    first, second = st.columns(2)
    with first:
        st.altair_chart(metric_chart(frame, "RMSE", x, unit, log=log), width="stretch")
    with second:
        st.altair_chart(metric_chart(frame, "MAE", x, unit, log=log), width="stretch")
    if (frame["metric"] == "R²").any():
        st.altair_chart(metric_chart(frame, "R²", x, unit), width="stretch")


body()
