"""Champion vs challengers: every spec of a version on the same messages, promotions, and the
control to promote a challenger."""

from __future__ import annotations

import streamlit as st

from ui import live
from ui.charts import comparison_chart
from ui.lifecycle import (
    champions_frame,
    comparison_frame,
    comparison_instances,
    latest_comparison_frame,
    promotable,
    promotion_marks,
    promotions_frame,
)
from ui.promote import promote_control

settings = live.settings()
dataset = live.dataset(settings)
unit = dataset.units.get(dataset.target)

st.title("Champion vs challengers")
st.caption(
    "A processor started with `--challengers` runs several model specs on every message, each "
    "predicting before it learns. Only the champion's predictions are served (the "
    f"`{settings.topics.predictions}` topic); the challengers' go to `{settings.topics.challengers}`. "
    "The figures below are pooled over the keys of one processor instance, from its comparison "
    "records. Red rules mark promotions."
)


@st.fragment(run_every=1)
def body() -> None:
    view = live.view(settings)
    if not live.ready(view, settings):
        return
    if not view.comparisons:
        st.info("**No comparison yet.** Start the processor with challengers beside the champion, e.g. "
                "`python -m processor --challengers linear`: it publishes a comparison record with "
                f"every checkpoint to `{settings.topics.metrics}`.")
        return
    versions = sorted(view.comparisons)
    left, right = st.columns(2)
    version = left.selectbox("Model version", versions, index=len(versions) - 1, key="cmp_version")
    records = view.comparisons[version]
    instances = comparison_instances(records)
    instance = instances[0]
    if len(instances) > 1:
        instance = right.selectbox("Processor instance", instances, key="cmp_instance",
                                   help="each instance pools the keys of its own partitions")

    first, second = st.columns([3, 1])
    with first:
        st.dataframe(latest_comparison_frame(records, instance), hide_index=True, width="stretch")
    with second:
        st.dataframe(champions_frame(records), hide_index=True, width="stretch")
    frame = comparison_frame(records, instance)
    marks = promotion_marks(view.promotions, version)
    if frame[frame["window"] == "rolling"].empty:
        st.info("No rolling figures yet: the specs have not scored a message.")
    else:
        left_chart, right_chart = st.columns(2)
        with left_chart:
            st.altair_chart(comparison_chart(frame, "RMSE", unit, marks), width="stretch")
        with right_chart:
            st.altair_chart(comparison_chart(frame, "MAE", unit, marks), width="stretch")

    st.subheader("Promotions")
    promotions = promotions_frame(view.promotions, version)
    if promotions.empty:
        st.caption(f"No promotion applied in version `{version}` yet.")
    else:
        st.dataframe(promotions.head(50), hide_index=True, width="stretch")

    promote_control(settings, version, promotable(records))


body()
