"""PNG plots (matplotlib, Agg: no display needed).

Latency is drawn as a CDF per curve on a log axis, since the tails are the point; the
chat scenario adds throughput and p99 against the offered rate, and ``compare`` draws
both systems on the same axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .scenarios.common import Outcome

__all__ = ["plot"]


def plot(outcome: Outcome, path: Path) -> None:
    result = outcome.result
    scenario = result.get("scenario")
    if scenario == "compare":
        figure = _compare(result, outcome)
    elif scenario == "chat":
        figure = _chat([result], outcome)
    else:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        _cdfs(axis, outcome, f"{scenario} on {result.get('target')}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _cdfs(axis: Any, outcome: Outcome, title: str) -> None:
    for label, hist in outcome.curves.items():
        if hist.total:
            xs, ys = hist.cdf_points()
            axis.plot(xs, ys, label=f"{label} (n={hist.total})")
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms)")
    axis.set_ylabel("fraction ≤ latency")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)


def _chat(results: list[dict[str, Any]], outcome: Outcome | None) -> Any:
    columns = 4 if outcome is not None else 3
    figure, axes = plt.subplots(1, columns, figsize=(4.6 * columns, 4.5))
    top = 0.0
    for index, result in enumerate(results):
        color = f"C{index}"
        steps = [s for s in result["steps"] if s["offered_per_s"] is not None]
        name = result["target"]
        if not steps:
            continue
        offered = [s["offered_per_s"] for s in steps]
        top = max(top, *offered)
        axes[0].plot(offered, [s["delivered_per_s"] for s in steps], "o-", color=color, label=name)
        per_core = [s["delivered_per_core_s"] or 0 for s in steps]
        axes[1].plot(offered, per_core, "o-", color=color, label=name)
        p50 = [s["send_to_delivery_ms"]["p50"] for s in steps]
        p99 = [s["send_to_delivery_ms"]["p99"] for s in steps]
        axes[2].plot(offered, p99, "o-", color=color, label=f"{name} p99")
        axes[2].plot(offered, p50, "s--", color=color, label=f"{name} p50")
    axes[0].plot([0, top], [0, top], ":", color="grey", label="offered")
    labels = [
        ("delivered messages/s", "throughput"),
        ("delivered per server core-second", "server efficiency"),
        ("send → delivery (ms)", "latency"),
    ]
    for axis, (ylabel, title) in zip(axes[:3], labels, strict=True):
        axis.set_xlabel("offered messages/s")
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(bottom=0)
    axes[2].set_yscale("log")
    if outcome is not None:
        _cdfs(axes[3], outcome, f"send → delivery on {results[0]['target']}")
    return figure


def _compare(result: dict[str, Any], outcome: Outcome) -> Any:
    if result["compared"] == "chat":
        figure = _chat([result["imaccess"], result["peer"]], None)
    else:
        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        _cdfs(left, outcome, "latency")
        ratios = {k: v for k, v in result["ratios"].items() if isinstance(v, int | float)}
        bars = right.barh(list(ratios), list(ratios.values()))
        right.bar_label(bars, fmt="%.3g")
        right.axvline(1.0, color="grey", linestyle="--")
        right.set_xscale("log")
        right.set_xlabel("imaccess / peer (log)")
        right.set_title("ratios")
    figure.suptitle(f"{result['compared']}: imaccess (cluster) vs python-socketio peer")
    return figure
