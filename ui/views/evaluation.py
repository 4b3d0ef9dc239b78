"""Evaluation: prequential RMSE, MAE and R², cumulative and rolling, per key and overall, live."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kappaml.dataset import GLOBAL_KEY
from ui import live
from ui.charts import (
    XAxis,
    delay_histogram,
    delay_quantile_chart,
    delayed_counts_chart,
    metric_chart,
    with_unit,
)
from ui.frames import (
    delay_histogram_frame,
    delay_quantiles_frame,
    delayed_counts_frame,
    delayed_summary_frame,
    latest_metrics_frame,
    metrics_frame,
    model_keys,
)
from ui.lifecycle import drift_marks
from ui.store import OVERALL_KEY, StoreView

settings = live.settings()
dataset = live.dataset(settings)
unit = dataset.units.get(dataset.target)

st.title("Evaluation")
st.caption(
    f"Prequential (test-then-train) errors of the online models predicting `{dataset.target}`: "
    "every prediction is scored before the model learns the example. Solid lines are cumulative, "
    "dashed lines the rolling window; every model version (live and replay) shares one chart. "
    "Red vertical rules mark drift detections (hover for details). With delayed labels a served "
    "prediction is scored when its label arrives (delayed prequential): see *Delayed labels* below."
)

# Columns of the recent detections table, in reading order.
DRIFT_COLUMNS = ["time", "key", "model", "detector", "action", "error_before", "error_after", "learned",
                 "generation", "partition", "offset", "id"]


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
    drifts = drift_marks(view.drifts, view.metrics, key)
    first, second = st.columns(2)
    with first:
        st.altair_chart(metric_chart(frame, "RMSE", x, unit, log=log, drifts=drifts), width="stretch")
    with second:
        st.altair_chart(metric_chart(frame, "MAE", x, unit, log=log), width="stretch")
    if (frame["metric"] == "R²").any():
        st.altair_chart(metric_chart(frame, "R²", x, unit), width="stretch")
    delayed_labels(view, key, x)
    drift_table(drifts, key)


def delayed_labels(view: StoreView, key: str, x: XAxis) -> None:
    """Served, learned, pending and expired predictions and the label delay (delayed labels only)."""
    summary = delayed_summary_frame(view.metrics, key)
    if summary.empty:
        return
    st.subheader("Delayed labels")
    st.caption(
        "Each `features` record gets its prediction served at once; the model learns, and the errors "
        "above score that served prediction, when its `label` arrives. Every served prediction is "
        "learned, expired (no label within the processor's `--label-ttl`) or still pending: "
        "served = learned + expired + pending at every checkpoint. Delays are in event time "
        "(label ts − features ts) and in records of the key."
    )
    main = summary.sort_values("served", ascending=False).iloc[0]
    cells = st.columns(5)
    for cell, (label, column) in zip(cells, (("Served", "served"), ("Learned with their label", "learned"),
                                             ("Pending now", "pending"), ("Expired", "expired"),
                                             ("Orphan labels", "orphan labels")), strict=True):
        cell.metric(label, f"{int(main[column]):,}")
    if not summary["balanced"].all():
        models = ", ".join(summary.loc[~summary["balanced"], "model"])
        st.warning(f"served ≠ learned + expired + pending for {models}: a metrics record is inconsistent.")
    st.dataframe(summary, hide_index=True, width="stretch")
    counts = delayed_counts_frame(view.metrics, key)
    seconds = delay_quantiles_frame(view.metrics, key, "ms")
    delays, unit = (seconds, "s") if not seconds.empty else (delay_quantiles_frame(view.metrics, key, "rows"),
                                                             "records of the key")
    first, second = st.columns(2)
    with first:
        st.altair_chart(delayed_counts_chart(counts, x), width="stretch")
    with second:
        if not delays.empty:
            st.altair_chart(delay_quantile_chart(delays, x, unit), width="stretch")
    recent = delay_histogram_frame(view.predictions, None if key == OVERALL_KEY else key)
    in_seconds = bool(recent["delay_s"].notna().any())
    column, unit = ("delay_s", "s") if in_seconds else ("delay_rows", "records of the key")
    if not recent.empty:
        st.altair_chart(delay_histogram(recent.dropna(subset=[column]), column, unit), width="stretch")


def drift_table(drifts: pd.DataFrame, key: str) -> None:
    st.subheader("Drift detections")
    # In backticks: a key like __all__ would otherwise be read as markdown (bold).
    where = "any key" if key == OVERALL_KEY else f"key `{key}`"
    if drifts.empty:
        st.caption(f"No drift detected on {where} (among the newest detections this UI read from "
                   f"`{settings.topics.drift}`).")
        return
    st.caption(f"The newest detections on {where}, newest first. Errors are the mean absolute error "
               "before the change and over the latest messages.")
    st.dataframe(drifts.sort_values("time", ascending=False)[DRIFT_COLUMNS].head(20).rename(columns={
        "time": "detected (UTC)", "error_before": with_unit("error before", unit),
        "error_after": with_unit("error after", unit), "learned": "learned by the model",
    }), hide_index=True, width="stretch")


body()
