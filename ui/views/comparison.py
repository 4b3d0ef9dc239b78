"""Champion vs challengers: every spec of a version on the same messages, promotions, the
promotion gate's statistic, the decisions taken without an operator, and the controls to
promote a challenger or roll back."""

from __future__ import annotations

import streamlit as st

from kappaml.records import GateLook
from ui import live
from ui.charts import comparison_chart, gate_chart
from ui.decisions import decisions_frame, gate_frame, gate_partitions, rollback_choice
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
from ui.rollback import rollback_control

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

    gate_section(view.gate_looks, version)
    st.subheader("Automatic decisions")
    decisions = decisions_frame(view.promotions, version)
    if decisions.empty:
        st.caption(f"No promotion with a reason (gate, rollback, ...) applied in version `{version}` yet.")
    else:
        st.caption("Every promotion not made by hand, as each partition applied it: the spec serving "
                   "before and after, and the gate's evidence (the window of pairs the sign test "
                   "counted, the mean squared errors over it, the offset whose scoring decided).")
        st.dataframe(decisions.head(50), hide_index=True, width="stretch")

    promote_control(settings, version, promotable(records))
    rollback_control(settings, version, *rollback_choice(records, decisions))


def gate_section(looks: list[GateLook], version: str) -> None:
    """The gate's statistic per challenger over the offsets of one partition."""
    st.subheader("Promotion gate")
    partitions = gate_partitions(looks, version)
    if not partitions:
        st.caption(f"No look of the promotion gate in version `{version}`: start the processor with "
                   "`--promotion auto` to let it promote a challenger that errs less often.")
        return
    partition = st.selectbox("Raw partition", partitions, key="gate_partition",
                             help="the gate decides per partition, on that partition's rows")
    frame = gate_frame(looks, version, partition)
    st.caption("The sign test's p-value of each challenger at every look of the gate in this partition "
               "(lines), against the look's level alpha (dashed; the levels of successive looks sum to "
               "1 - confidence), log scale. A challenger is promoted (red rule) when its p-value falls to "
               "alpha and its MSE is lower by the margin; after a switch the looks start again. With "
               "`--drift-policy background`, each background model (a fresh model of a key's spec started "
               "by a drift detection, judged against that key's model) is a line of its own, with its own "
               "levels; its red rule marks the look that decided its takeover.")
    st.altair_chart(gate_chart(frame), width="stretch")


body()
