"""Predictions: predicted vs actual with the identity line, residuals, the latest predictions."""

from __future__ import annotations

import streamlit as st

from ui import live
from ui.charts import predicted_vs_actual, residual_histogram, with_unit
from ui.frames import EXPIRED, LABELLED, WAITING, predictions_frame, served_frame

ALL = "(all)"

settings = live.settings()
dataset = live.dataset(settings)
unit = dataset.units.get(dataset.target)

st.title("Predictions")
st.caption(
    f"The newest predictions of `{dataset.target}` read from `{settings.topics.predictions}`: each was "
    "made before its model learned the example, so these are honest out-of-sample errors (except rows "
    "of a looping CSV's second and later passes, marked as such). With delayed labels a prediction is "
    "served first and scored when its label arrives: the ones still waiting for their label are marked."
)


@st.fragment(run_every=1)
def body() -> None:
    view = live.view(settings)
    if not live.ready(view, settings):
        return
    everything = predictions_frame(view.predictions)
    # The processors' --label-ttl: a prediction that waited longer expired (no record under drop).
    ttl = {v: o.label_ttl for v, o in view.latest_overall().items()}
    served_all = served_frame(view.predictions, ttl=ttl)
    if everything.empty and served_all.empty:
        live.explain_no_data(settings, "predictions")
        return
    left, middle, right = st.columns(3)
    both = (everything, served_all)
    versions = [ALL, *sorted({v for f in both for v in f["version"].unique()})]
    keys = [ALL, *sorted({k for f in both for k in f["key"].unique()})]
    version = left.selectbox("Model version", versions, key="pred_version")
    key = middle.selectbox("Model key", keys, key="pred_key")
    limit = right.select_slider("Newest predictions shown", [100, 500, 1000, 2000, 5000], value=1000,
                                key="pred_limit")
    frame, served = everything, served_all
    if version != ALL:
        frame, served = frame[frame["version"] == version], served[served["version"] == version]
    if key != ALL:
        frame, served = frame[frame["key"] == key], served[served["key"] == key]
    frame, served = frame.tail(limit), served.tail(limit)
    if frame.empty:
        st.info("No scored predictions for this selection yet." if not served.empty
                else "No predictions for this selection yet.")
        if not served.empty:
            waiting_table(served)
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
    columns = ["processed_ts", "version", "spec", "key", "id", "y_true", "y_pred", "error", "latency_ms",
               "partition", "offset"]
    if frame["delay_rows"].notna().any():  # delayed labels: how long each label took
        columns[-2:-2] = ["delay_ms", "delay_rows", "expired"]
    table = frame.iloc[::-1].head(50)[columns]
    st.dataframe(
        table.rename(columns={
            "processed_ts": "processed (UTC)",
            "y_true": with_unit("actual", unit), "y_pred": with_unit("predicted", unit),
            "error": with_unit("residual", unit), "latency_ms": "event→prediction (ms)",
            "delay_ms": "label delay (ms)", "delay_rows": "label delay (records)",
        }),
        hide_index=True, width="stretch",
    )
    if not served.empty:
        waiting_table(served)


def waiting_table(served) -> None:  # type: ignore[no-untyped-def]
    """Delayed labels: the served predictions, the ones still waiting for their label marked."""
    counts = served["status"].value_counts()
    st.subheader("Served predictions (delayed labels)")
    a, b, c, d = st.columns(4)
    a.metric("Served predictions shown", f"{len(served):,}")
    b.metric("Waiting for their label", f"{int(counts.get(WAITING, 0)):,}")
    c.metric("Labelled", f"{int(counts.get(LABELLED, 0)):,}")
    d.metric("Expired", f"{int(counts.get(EXPIRED, 0)):,}")
    st.caption(
        "Each was served when its `features` record arrived, before its label was known; it is scored "
        "(in the charts and the table above) once the label comes. The *waiting* column marks the ones still "
        "waiting for it. One whose label did not come within the processor's `--label-ttl` is expired: "
        "under `--on-missing-label drop` no record says so, and it is marked expired here once it has "
        "waited longer than the TTL by the predictions read (the Evaluation page has the exact counts)."
    )
    table = served.iloc[::-1].head(50).assign(waiting=lambda f: f["status"] == WAITING)
    st.dataframe(
        table[["waiting", "processed_ts", "version", "spec", "key", "id", "status", "y_pred", "y_true",
               "error", "delay_ms", "partition", "offset"]].rename(columns={
            "processed_ts": "served (UTC)", "y_pred": with_unit("served prediction", unit),
            "y_true": with_unit("actual", unit), "error": with_unit("residual", unit),
            "delay_ms": "label delay (ms)"}),
        hide_index=True, width="stretch",
    )


body()
