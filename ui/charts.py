"""Altair charts of the UI; every axis says what it measures and in which unit."""

from __future__ import annotations

from typing import Literal

import altair as alt
import pandas as pd

__all__ = [
    "XAxis", "metric_chart", "predicted_vs_actual", "residual_histogram", "throughput_chart", "with_unit",
]

XAxis = Literal["messages", "time"]


def with_unit(label: str, unit: str | None) -> str:
    return f"{label} ({unit})" if unit else label


def _x(x: XAxis) -> alt.X:
    if x == "time":
        return alt.X("time:T", title="event time of the metrics record (UTC)")
    return alt.X("messages:Q", title="messages scored (count)")


def metric_chart(frame: pd.DataFrame, metric: str, x: XAxis, unit: str | None, *,
                 log: bool = False) -> alt.Chart:
    """One metric over messages or time: a line per version, solid cumulative, dashed rolling.

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
    return (
        alt.Chart(data, title=f"{metric}: cumulative and rolling, every model version")
        .mark_line(point=len(data) < 60)
        .encode(
            x=_x(x),
            y=alt.Y("value:Q", title=y_title + (", log scale" if log else ""), scale=scale),
            color=alt.Color("version:N", title="model version"),
            strokeDash=alt.StrokeDash(
                "window:N", title="window",
                legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2, symbolStrokeColor="gray"),
                scale=alt.Scale(domain=["cumulative", "rolling"], range=[[1, 0], [5, 3]]),
            ),
            detail="window:N",
            tooltip=[
                alt.Tooltip("version:N"), alt.Tooltip("spec:N"), alt.Tooltip("window:N"),
                alt.Tooltip("messages:Q", title="messages"),
                alt.Tooltip("time:T", format="%H:%M:%S"), alt.Tooltip("value:Q", title=metric, format=".4g"),
            ],
        )
        .properties(height=260)
    )


def predicted_vs_actual(frame: pd.DataFrame, target: str,
                        unit: str | None) -> alt.LayerChart | alt.FacetChart:
    """Predicted against actual, one colour per version, with the identity line y = x."""
    low = float(min(frame["y_true"].min(), frame["y_pred"].min()))
    high = float(max(frame["y_true"].max(), frame["y_pred"].max()))
    identity = pd.DataFrame({"y_true": [low, high], "y_pred": [low, high]})
    points = (
        alt.Chart(frame)
        .mark_circle(size=18, opacity=0.55)
        .encode(
            x=alt.X("y_true:Q", title=with_unit(f"actual {target}", unit), scale=alt.Scale(zero=False)),
            y=alt.Y("y_pred:Q", title=with_unit(f"predicted {target}", unit), scale=alt.Scale(zero=False)),
            color=alt.Color("version:N", title="model version"),
            tooltip=["version:N", "key:N", "id:N", alt.Tooltip("y_true:Q", format=".4g"),
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
            x=alt.X("time:T", title="time (UTC)"),
            y=alt.Y("throughput:Q", title="throughput (messages/s)"),
            color=alt.Color("version:N", title="model version"),
            tooltip=["version:N", alt.Tooltip("time:T", format="%H:%M:%S"),
                     alt.Tooltip("throughput:Q", format=".1f")],
        )
        .properties(height=220)
    )
