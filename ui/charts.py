"""Altair charts of the UI; every axis says what it measures and in which unit."""

from __future__ import annotations

from typing import Literal

import altair as alt
import pandas as pd

__all__ = [
    "XAxis", "comparison_chart", "delay_histogram", "delay_quantile_chart", "delayed_counts_chart",
    "gate_chart", "metric_chart", "predicted_vs_actual", "residual_histogram", "throughput_chart",
    "with_unit",
]

# The colour of the event marks (drift detections, promotions): apart from the model lines'.
EVENT_COLOR = "#d62728"

XAxis = Literal["messages", "time"]
# What alt.layer gives back, to the type checker's eye.
Layered = alt.Chart | alt.LayerChart | alt.FacetChart


def with_unit(label: str, unit: str | None) -> str:
    return f"{label} ({unit})" if unit else label


# Vega-Lite's default time labels are local time on a 12-hour clock without AM/PM (14:05 shows as
# 02:05): every time axis and tooltip here is UTC on a 24-hour clock, as its title says.
TIME_FORMAT = "%H:%M:%S"


def time_x(title: str | None = None) -> alt.X:
    return alt.X("time:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format=TIME_FORMAT, formatType="utc", labelOverlap=True))


def time_tooltip(title: str | None = None) -> alt.Tooltip:
    return alt.Tooltip("time:T", title=title or "time (UTC)", format=TIME_FORMAT, formatType="utc")


def _x(x: XAxis) -> alt.X:
    if x == "time":
        return time_x("event time of the metrics record (UTC)")
    return alt.X("messages:Q", title="messages scored (count)")


def metric_chart(frame: pd.DataFrame, metric: str, x: XAxis, unit: str | None, *,
                 log: bool = False, drifts: pd.DataFrame | None = None) -> Layered:
    """One metric over messages or time: a line per model, solid cumulative, dashed rolling.

    ``drifts`` (``ui.lifecycle.drift_marks``): a vertical red rule at each drift detection,
    its details in the tooltip.

    ``log``: a logarithmic value axis (errors only), so the large errors of the first untrained
    predictions do not flatten the rest of the curve; zero errors cannot be drawn on it.
    R² is shown from -1 up: an early R² of -1000 would flatten everything else (values below
    are drawn at the bottom edge).
    """
    data = frame[frame["metric"] == metric]
    y_title = f"{metric} (unitless)" if metric == "R²" else with_unit(metric, unit)
    if metric == "R²":
        low = max(float(data["value"].min()), -1.0) if len(data) else 0.0
        scale = alt.Scale(domain=[low, 1.0], clamp=True, nice=False)
        if low == -1.0:
            y_title += ", from -1"
    elif log:
        data = data[data["value"] > 0]
        scale = alt.Scale(type="log")
    else:
        scale = alt.Scale(zero=False)
    lines = (
        alt.Chart(data, title=f"{metric}: cumulative and rolling, every model version")
        .mark_line(point=len(data) < 60)
        .encode(
            x=_x(x),
            y=alt.Y("value:Q", title=y_title + (", log scale" if log else ""), scale=scale),
            color=alt.Color("model:N", title="model version"),
            strokeDash=alt.StrokeDash(
                "window:N", title="window",
                legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2, symbolStrokeColor="gray"),
                scale=alt.Scale(domain=["cumulative", "rolling"], range=[[1, 0], [5, 3]]),
            ),
            detail="window:N",
            tooltip=[
                alt.Tooltip("model:N"), alt.Tooltip("spec:N"), alt.Tooltip("window:N"),
                alt.Tooltip("messages:Q", title="messages"),
                time_tooltip(), alt.Tooltip("value:Q", title=metric, format=".4g"),
            ],
        )
        .properties(height=260)
    )
    marks = drifts.dropna(subset=[x]) if drifts is not None else None
    if marks is None or marks.empty:
        return lines
    # A rule has no y: it spans the whole plot, whatever the value scale.
    rules = alt.Chart(marks).mark_rule(color=EVENT_COLOR, strokeWidth=2, opacity=0.7).encode(
        x=_x(x),
        tooltip=[
            alt.Tooltip("key:N"), alt.Tooltip("model:N"), alt.Tooltip("spec:N"), alt.Tooltip("detector:N"),
            alt.Tooltip("error_before:Q", title="error before", format=".4g"),
            alt.Tooltip("error_after:Q", title="error after", format=".4g"),
            alt.Tooltip("action:N"), alt.Tooltip("partition:N"), alt.Tooltip("offset:Q"),
            alt.Tooltip("learned:Q", title="learned by the model"),
            time_tooltip("detected at (UTC)"),
        ],
    )
    return alt.layer(lines, rules)


def comparison_chart(frame: pd.DataFrame, metric: str, unit: str | None,
                     promotions: pd.DataFrame) -> Layered:
    """One metric of every spec over time (rolling window), a red rule at each promotion."""
    data = frame[(frame["metric"] == metric) & (frame["window"] == "rolling")]
    lines = (
        alt.Chart(data, title=f"Rolling {metric} of each spec on the same messages")
        .mark_line(point=len(data) < 60)
        .encode(
            x=time_x("time of the comparison record (UTC)"),
            y=alt.Y("value:Q", title=with_unit(f"rolling {metric}", unit), scale=alt.Scale(zero=False)),
            color=alt.Color("spec:N", title="model spec"),
            tooltip=[alt.Tooltip("spec:N"), alt.Tooltip("role:N"), alt.Tooltip("learned:Q"),
                     alt.Tooltip("drifts:Q"), time_tooltip(),
                     alt.Tooltip("value:Q", title=f"rolling {metric}", format=".4g")],
        )
        .properties(height=260)
    )
    if promotions.empty:
        return lines
    rules = alt.Chart(promotions).mark_rule(color=EVENT_COLOR, strokeWidth=2, opacity=0.7).encode(
        x=time_x(),
        tooltip=[alt.Tooltip("spec:N", title="promoted"), alt.Tooltip("previous:N"), alt.Tooltip("reason:N"),
                 alt.Tooltip("partition:N"), alt.Tooltip("offset:Q", title="control record offset"),
                 alt.Tooltip("by:N"), time_tooltip("applied at (UTC)")],
    )
    return alt.layer(lines, rules)


def gate_chart(frame: pd.DataFrame) -> Layered:
    """One partition's gate (``ui.decisions.gate_frame``): each challenger's p-value at each look,
    the look's level alpha (dashed), a red rule where the gate promoted. Log scale: the levels
    shrink as the looks go by, and a clear winner's p-value is tiny."""
    data = frame[frame["p_value"] > 0]
    x = alt.X("offset:Q", title="raw-topic offset of the look (count)", scale=alt.Scale(zero=False))
    y = alt.Scale(type="log")
    lines = alt.Chart(data).mark_line(point=True).encode(
        x=x, y=alt.Y("p_value:Q", title="p-value, alpha (log)", scale=y),
        color=alt.Color("challenger:N", title="challenger"), detail="serving:N",
        tooltip=[alt.Tooltip("challenger:N"), alt.Tooltip("serving:N"), alt.Tooltip("offset:Q"),
                 alt.Tooltip("look:Q"), alt.Tooltip("wins:Q"), alt.Tooltip("n:Q"),
                 alt.Tooltip("p_value:Q", title="p-value", format=".3g"),
                 alt.Tooltip("alpha:Q", format=".3g"), alt.Tooltip("mse_serving:Q", format=".4g"),
                 alt.Tooltip("mse_challenger:Q", format=".4g"), alt.Tooltip("passed:N"),
                 alt.Tooltip("why:N")],
    )
    # One level line per series: the gate's looks share theirs; each background model (drift
    # policy background) has its own looks, hence its own levels.
    levels = alt.Chart(data.drop_duplicates(["series", "offset"])).mark_line(
        color="gray", strokeDash=[5, 3], interpolate="step-after").encode(
        x=x, y=alt.Y("alpha:Q", scale=y), detail="series:N",
        tooltip=[alt.Tooltip("series:N", title="looks of"), alt.Tooltip("offset:Q"), alt.Tooltip("look:Q"),
                 alt.Tooltip("alpha:Q", format=".3g")])
    parts = [lines, levels]
    promoted = data[data["promoted"]]
    if not promoted.empty:
        parts.append(alt.Chart(promoted).mark_rule(color=EVENT_COLOR, strokeWidth=2, opacity=0.7).encode(
            x=x, tooltip=[alt.Tooltip("challenger:N", title="promoted"), alt.Tooltip("serving:N"),
                          alt.Tooltip("offset:Q", title="deciding offset"), alt.Tooltip("why:N")]))
    # No chart title: in the page, a title above this log-scaled chart was drawn partly outside
    # its frame (cut off); the page says what the chart shows in words above it.
    return alt.layer(*parts).properties(height=260)


def predicted_vs_actual(frame: pd.DataFrame, target: str,
                        unit: str | None) -> alt.LayerChart | alt.FacetChart:
    """Predicted against actual, one colour per version, with the identity line y = x."""
    low = float(min(frame["y_true"].min(), frame["y_pred"].min()))
    high = float(max(frame["y_true"].max(), frame["y_pred"].max()))
    identity = pd.DataFrame({"y_true": [low, high], "y_pred": [low, high]})
    frame = frame.assign(sample=(frame["pass"] > 1).map({False: "out of sample (pass 1)",
                                                         True: "seen before (pass 2+)"}))
    points = (
        alt.Chart(frame)
        .mark_point(size=18, opacity=0.55, filled=True)
        .encode(
            x=alt.X("y_true:Q", title=with_unit(f"actual {target}", unit), scale=alt.Scale(zero=False)),
            y=alt.Y("y_pred:Q", title=with_unit(f"predicted {target}", unit), scale=alt.Scale(zero=False)),
            color=alt.Color("version:N", title="model version"),
            # Pass 2+ of a looping CSV: rows learned before, hollow (not out of sample).
            shape=alt.Shape("sample:N", title="sample", scale=alt.Scale(
                domain=["out of sample (pass 1)", "seen before (pass 2+)"], range=["circle", "cross"])),
            tooltip=["version:N", "key:N", "id:N", "pass:Q", alt.Tooltip("y_true:Q", format=".4g"),
                     alt.Tooltip("y_pred:Q", format=".4g"), alt.Tooltip("error:Q", format=".4g")],
        )
    )
    line = alt.Chart(identity).mark_line(color="gray", strokeDash=[4, 4]).encode(x="y_true:Q", y="y_pred:Q")
    return alt.layer(points, line).properties(title="Predicted vs actual (dashed: identity y = x)",
                                              height=360)


def residual_histogram(frame: pd.DataFrame, target: str, unit: str | None) -> alt.Chart:
    return (
        alt.Chart(frame, title="Residuals (predicted − actual)")
        .mark_bar(opacity=0.7)
        .encode(
            x=alt.X("error:Q", bin=alt.Bin(maxbins=40),
                    title=with_unit(f"residual of {target}: predicted − actual", unit)),
            y=alt.Y("count():Q", title="predictions (count)", stack=None),
            color=alt.Color("version:N", title="model version"),
        )
        .properties(height=360)
    )


def throughput_chart(frame: pd.DataFrame) -> alt.Chart:
    """Processor throughput over time, from its overall metrics records."""
    return (
        alt.Chart(frame, title="Processor throughput")
        .mark_line()
        .encode(
            x=time_x("time (UTC)"),
            y=alt.Y("throughput:Q", title="throughput (messages/s)"),
            color=alt.Color("version:N", title="model version"),
            tooltip=["version:N", time_tooltip(),
                     alt.Tooltip("throughput:Q", format=".1f")],
        )
        .properties(height=220)
    )


# ------------------------------------------------------------------------------- delayed labels
def _served_x(x: XAxis) -> alt.X:
    if x == "time":
        return time_x("event time of the metrics record (UTC)")
    return alt.X("messages:Q", title="predictions served (count)")


def delayed_counts_chart(frame: pd.DataFrame, x: XAxis) -> alt.Chart:
    """Predictions waiting for their label (pending) and expired ones, over the checkpoints."""
    return (
        alt.Chart(frame, title="Served predictions waiting for their label, and expired")
        .mark_line(point=len(frame) < 60)
        .encode(
            x=_served_x(x),
            y=alt.Y("value:Q", title="predictions (count)"),
            color=alt.Color("model:N", title="model version"),
            strokeDash=alt.StrokeDash("count:N", title="count", scale=alt.Scale(
                domain=["pending", "expired"], range=[[1, 0], [5, 3]]),
                legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2, symbolStrokeColor="gray")),
            detail="count:N",
            tooltip=[alt.Tooltip("model:N"), alt.Tooltip("spec:N"), alt.Tooltip("count:N"),
                     alt.Tooltip("messages:Q", title="served"), time_tooltip(),
                     alt.Tooltip("value:Q", title="predictions")],
        )
        .properties(height=260)
    )


def delay_quantile_chart(frame: pd.DataFrame, x: XAxis, unit: str) -> alt.Chart:
    """The label delay's p50/p95/p99 (recent labels of the key) over the checkpoints."""
    return (
        alt.Chart(frame, title="Label delay: p50, p95 and p99 of the recent labels")
        .mark_line(point=len(frame) < 60)
        .encode(
            x=_served_x(x),
            y=alt.Y("value:Q", title=f"label delay ({unit})"),
            color=alt.Color("model:N", title="model version"),
            strokeDash=alt.StrokeDash("quantile:N", title="quantile", scale=alt.Scale(
                domain=["p50", "p95", "p99"], range=[[1, 0], [5, 3], [2, 2]]),
                legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2, symbolStrokeColor="gray")),
            detail="quantile:N",
            tooltip=[alt.Tooltip("model:N"), alt.Tooltip("quantile:N"), time_tooltip(),
                     alt.Tooltip("value:Q", title=f"delay ({unit})", format=".4g")],
        )
        .properties(height=260)
    )


def delay_histogram(frame: pd.DataFrame, column: str, unit: str) -> alt.Chart:
    """The distribution of the label delays of the newest labelled predictions."""
    return (
        alt.Chart(frame, title="Label delay of the newest labelled predictions")
        .mark_bar(opacity=0.7)
        .encode(
            x=alt.X(f"{column}:Q", bin=alt.Bin(maxbins=40), title=f"label delay ({unit})"),
            y=alt.Y("count():Q", title="predictions (count)", stack=None),
            color=alt.Color("version:N", title="model version"),
        )
        .properties(height=260)
    )
