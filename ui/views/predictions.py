"""Predictions: predicted vs actual with the identity line, residuals, the latest predictions."""

from __future__ import annotations

import streamlit as st

from ui import live
from ui.charts import predicted_vs_actual, residual_histogram, with_unit
from ui.frames import predictions_frame

ALL = "(all)"

settings = live.settings()
dataset = live.dataset(settings)
unit = dataset.units.get(dataset.target)

st.title("Predictions")
st.caption(
    f"The newest predictions of `{dataset.target}` read from `{settings.topics.predictions}`: each was "
    "made before its model learned the example, so these are honest out-of-sample errors (except rows "
    "of a looping CSV's second and later passes, marked as such)."
)


@st.fragment(run_every=1)
def body() -> None:
    view = live.view(settings)
    if not live.ready(view, settings):
        return
    everything = predictions_frame(view.predictions)
    if everything.empty:
        live.explain_no_data(settings, "predictions")
        return
    left, middle, right = st.columns(3)
    versions = [ALL, *sorted(everything["version"].unique())]
    keys = [ALL, *sorted(everything["key"].unique())]
    version = left.selectbox("Model version", versions, key="pred_version")
    key = middle.selectbox("Model key", keys, key="pred_key")
    limit = right.select_slider("Newest predictions shown", [100, 500, 1000, 2000, 5000], value=1000,
                                key="pred_limit")
    frame = everything
    if version != ALL:
        frame = frame[frame["version"] == version]
    if key != ALL:
        frame = frame[frame["key"] == key]
    frame = frame.tail(limit)
    if frame.empty:
        st.info("No predictions for this selection yet.")
        return
    repeats = int((frame["pass"] > 1).sum())
    if repeats:
        st.warning(f"**{repeats:,} of these {len(frame):,} predictions are not out of sample:** the CSV "
                   f"loops, and they are of rows from pass {int(frame['pass'].max())} or earlier repeats "
                   "that the model had already learned (crosses on the chart). Only pass 1 is an honest "
                   "test; the default synthetic stream is new rows on every pass.")
    a, b, c = st.columns(3)
    a.metric("Predictions shown", f"{len(frame):,}")
    b.metric(with_unit("Mean absolute residual", unit), f"{frame['error'].abs().mean():.3g}")
    c.metric(with_unit("Mean residual (bias)", unit), f"{frame['error'].mean():+.3g}")
    scatter, histogram = st.columns(2)
    with scatter:
        st.altair_chart(predicted_vs_actual(frame, dataset.target, unit), width="stretch")
    with histogram:
        st.altair_chart(residual_histogram(frame, dataset.target, unit), width="stretch")
    st.subheader("Latest predictions")
    # After a promotion the served spec changes within a version: the spec column shows which.
    table = frame.iloc[::-1].head(50)[["processed_ts", "version", "spec", "key", "id", "y_true", "y_pred",
                                       "error", "latency_ms", "partition", "offset"]]
    st.dataframe(
        table.rename(columns={
            "processed_ts": "processed (UTC)",
            "y_true": with_unit("actual", unit), "y_pred": with_unit("predicted", unit),
            "error": with_unit("residual", unit), "latency_ms": "event→prediction (ms)",
        }),
        hide_index=True, width="stretch",
    )


body()
