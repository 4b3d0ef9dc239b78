"""Pipeline: topics, consumer-group lag, throughput, dead letters and the processor's status."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from kappaml.records import OverallMetrics
from ui import live
from ui.charts import throughput_chart
from ui.frames import dlq_frame
from ui.store import OVERALL_KEY, StoreView

settings = live.settings()

st.title("Pipeline")
st.caption(
    f"The state of the `{settings.prefix}` topics on `{settings.kafka.bootstrap_servers}`, refreshed "
    "every second (cluster figures every two)."
)


def _offsets(offsets: dict[int, int]) -> str:
    return ", ".join(f"{p}: {o:,}" for p, o in sorted(offsets.items()))


def _age(record: OverallMetrics) -> float:
    """Seconds since the processor stamped this metrics record."""
    return (time.time() * 1000 - record.ts) / 1000


def _processor_status(view: StoreView) -> None:
    latest = view.latest_overall()
    if not latest:
        st.warning("**Processor: no metrics seen.** It publishes a metrics record about every second "
                   "while data flows; start it with `python -m processor` (or `make run`).")
        return
    for version, record in sorted(latest.items()):
        age = _age(record)
        who = f"version **{version}** (`{record.spec}`, instance `{record.instance or '?'}`)"
        if age <= settings.alive_after:
            st.success(f"**Processor alive:** {who}, last metrics {max(age, 0):.1f} s ago.")
        else:
            st.warning(f"**Processor not alive:** {who}, last metrics {age:,.0f} s ago (it is stopped, "
                       "or idle: it publishes only while data flows).")
        duplicates = record.duplicates
        if isinstance(duplicates, dict) and duplicates.get("warning"):
            st.warning(
                f"**Version {version} skips its input as already learned:** "
                f"{duplicates.get('recent_skipped', 0):,} of its latest {duplicates.get('recent_rows', 0):,} "
                f"rows ({float(duplicates.get('share') or 0):.0%}; {duplicates.get('skipped', 0):,} in all) "
                "had a row id it had learned from the same stream. The same rows were ingested again: "
                "the model learns nothing from them. A different CSV is a new stream and is learned."
            )


def _throughput_frame(view: StoreView) -> pd.DataFrame:
    rows = [
        {"version": version, "time": r.ts, "throughput": r.throughput}
        for (version, key, _spec), records in view.metrics.items() if key == OVERALL_KEY
        for r in records if isinstance(r, OverallMetrics) and r.throughput is not None
    ]
    frame = pd.DataFrame(rows, columns=["version", "time", "throughput"])
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame


@st.fragment(run_every=1)
def body() -> None:
    view = live.view(settings)
    if not live.ready(view, settings):
        return
    info = view.pipeline
    _processor_status(view)
    latest = view.latest_overall()
    dlq_topic = next((t for t in info.topics if t.role == "dlq"), None)
    total_lag = sum(g.total_lag for g in info.groups)
    a, b, c, d = st.columns(4)
    a.metric("Ingest rate (messages/s)", "-" if info.raw_rate is None else f"{info.raw_rate:,.1f}")
    a.caption("appended to the raw topic")
    alive = [r for r in latest.values() if _age(r) <= settings.alive_after]
    b.metric("Processor throughput (messages/s)",
             f"{sum(r.throughput or 0.0 for r in alive):,.1f}" if alive else "-")
    b.caption("latest overall metrics of the live versions")
    c.metric("Consumer lag (messages)", f"{total_lag:,}" if info.groups else "-")
    c.caption("processor groups on the raw topic")
    d.metric("Dead letters", f"{dlq_topic.messages:,}" if dlq_topic else "-")
    d.caption(f"in `{settings.topics.dlq}`")

    st.subheader("Topics")
    if info.topics:
        st.dataframe(pd.DataFrame([{
            "topic": t.name, "role": t.role, "partitions": t.partitions,
            "end offsets": _offsets(t.end_offsets), "messages retained": t.messages,
        } for t in info.topics]), hide_index=True, width="stretch")
    else:
        st.info("No topic information yet.")

    st.subheader("Consumer groups")
    if info.groups:
        st.dataframe(pd.DataFrame([{
            "group": g.group, "model version": g.version, "lag (messages)": g.total_lag,
            "lag per partition": _offsets(g.lag), "committed offsets": _offsets(g.committed),
        } for g in info.groups]), hide_index=True, width="stretch")
    else:
        st.info(f"No processor consumer group (`{settings.processor_group('<version>')}`) yet: "
                "start the processor with `python -m processor`.")

    for version, record in sorted(latest.items()):
        latency = record.latency_ms or {}
        if latency:
            st.caption(f"{version}: event-to-prediction latency p50 {latency.get('p50')} ms, "
                       f"p95 {latency.get('p95')} ms, p99 {latency.get('p99')} ms; "
                       f"{record.keys if record.keys is not None else '?'} keys, {record.learned:,} learned, "
                       f"{record.skipped or 0:,} duplicates skipped, "
                       f"{record.invalid or 0:,} invalid")
    throughput = _throughput_frame(view)
    if not throughput.empty:
        st.altair_chart(throughput_chart(throughput), width="stretch")

    st.subheader("Dead letters")
    if not view.dlq:
        st.success("No dead letters.")
    else:
        reasons = pd.DataFrame([
            {"stage": stage, "reason": reason, "count": n} for (stage, reason), n in view.dlq_reasons.items()
        ]).sort_values("count", ascending=False)
        st.caption(f"Counts over the {sum(view.dlq_reasons.values()):,} dead letters read by this UI "
                   "(it starts reading a little before the end of the topic).")
        st.dataframe(reasons, hide_index=True, width="stretch")
        st.markdown("Latest dead letters")
        st.dataframe(dlq_frame(view.dlq).head(20), hide_index=True, width="stretch")
    if view.unreadable:
        st.warning(f"{view.unreadable} records could not be read (latest: {view.last_unreadable}).")


body()
