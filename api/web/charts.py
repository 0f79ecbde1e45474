"""Dashboard charts drawn server-side by matplotlib as SVG (object-oriented API: no pyplot state, thread-safe)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta

import matplotlib
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

PASS_COLOR = "#2e7d32"
FAIL_COLOR = "#c62828"
BAR_COLOR = "#1f77b4"
DEADLINE_COLOR = "#e65100"
FIGURE_SIZE = (6.4, 3.2)  # inches; rendered at 100 dpi in the page
MAX_CHECKS_SHOWN = 15  # the checks that fail most; the rest are in the table

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable, rendered in the page's font
    "svg.hashsalt": "grader-dashboard",  # deterministic ids, so identical data gives identical bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def _figure(height: float | None = None) -> tuple[Figure, object]:
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(FIGURE_SIZE[0], height or FIGURE_SIZE[1]), layout="constrained")
        axes = figure.add_subplot()
    return figure, axes


def _empty(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#666")
    axes.set_axis_off()


def score_histogram(scores: Sequence[float], max_score: float, pass_mark: float | None) -> str:
    """Histogram of students' scores with the pass mark marked."""
    with matplotlib.rc_context(_RC):
        figure, axes = _figure()
        if not scores:
            _empty(axes, "no graded submissions yet")
        else:
            bins = [max_score * i / 20 for i in range(21)]
            counts, edges, patches = axes.hist(list(scores), bins=bins, color=BAR_COLOR, edgecolor="white")
            for patch, left in zip(patches, edges[:-1]):
                if pass_mark is not None and left + 1e-9 < pass_mark:
                    patch.set_facecolor(FAIL_COLOR)
            if pass_mark is not None:
                axes.axvline(pass_mark, color="black", linestyle="--", linewidth=1, label=f"pass mark {pass_mark:g}")
                axes.legend(loc="upper left", frameon=False)
            axes.set_xlim(0, max_score)
            axes.set_xlabel(f"score (out of {max_score:g})")
            axes.set_ylabel("students")
            axes.yaxis.get_major_locator().set_params(integer=True)
        axes.set_title("Best score per student")
        return _svg(figure)


def check_pass_rates(rates: dict[str, tuple[int, int]]) -> str:
    """Horizontal bars of the pass rate of each check (passed, total), the most failed first."""
    ordered = sorted(rates.items(), key=lambda item: (item[1][0] / item[1][1] if item[1][1] else 1.0, item[0]))
    shown = ordered[:MAX_CHECKS_SHOWN]
    with matplotlib.rc_context(_RC):
        figure, axes = _figure(height=max(2.4, 0.28 * len(shown) + 1.0))
        if not shown:
            _empty(axes, "no checks run yet")
        else:
            names = [name for name, _ in shown][::-1]
            values = [100.0 * passed / total if total else 0.0 for _, (passed, total) in shown][::-1]
            colors = [PASS_COLOR if value >= 80 else DEADLINE_COLOR if value >= 50 else FAIL_COLOR for value in values]
            axes.barh(names, values, color=colors)
            for y, value in enumerate(values):
                axes.text(min(value + 1, 92), y, f"{value:.0f}%", va="center", fontsize=8)
            axes.set_xlim(0, 100)
            axes.set_xlabel("runs passing the check (%)")
            axes.grid(axis="y", visible=False)
        axes.set_title("Pass rate per check (latest run of each student, most failed first)")
        return _svg(figure)


def accuracy_distribution(accuracies: Sequence[float], threshold: float | None) -> str:
    """Histogram of CIFAR-10 test accuracies (fractions) with the required accuracy marked."""
    with matplotlib.rc_context(_RC):
        figure, axes = _figure()
        if not accuracies:
            _empty(axes, "no CIFAR-10 runs yet")
        else:
            percents = [100.0 * value for value in accuracies]
            bins = [5 * i for i in range(21)]
            _, edges, patches = axes.hist(percents, bins=bins, color=PASS_COLOR, edgecolor="white")
            if threshold is not None:
                for patch, right in zip(patches, edges[1:]):
                    if right <= 100 * threshold + 1e-9:
                        patch.set_facecolor(FAIL_COLOR)
                axes.axvline(100 * threshold, color="black", linestyle="--", linewidth=1,
                             label=f"required {100 * threshold:g}%")
                axes.legend(loc="upper left", frameon=False)
            axes.set_xlim(0, 100)
            axes.set_xlabel("CIFAR-10 test accuracy (%)")
            axes.set_ylabel("students")
            axes.yaxis.get_major_locator().set_params(integer=True)
        axes.set_title("CIFAR-10 accuracy (best run per student)")
        return _svg(figure)


def submissions_over_time(times: Sequence[datetime], due_at: datetime | None) -> str:
    """Cumulative number of submissions against time, with the due date marked (or pointed at, when far off)."""
    with matplotlib.rc_context(_RC):
        figure, axes = _figure()
        if not times:
            _empty(axes, "no submissions yet")
        else:
            ordered = sorted(times)
            counts = range(1, len(ordered) + 1)
            axes.step(ordered, counts, where="post", color=BAR_COLOR, marker="o", markersize=3)
            axes.fill_between(ordered, counts, step="post", alpha=0.15, color=BAR_COLOR)
            span = max(ordered[-1] - ordered[0], timedelta(hours=1))
            if due_at is not None and ordered[0] - span <= due_at <= ordered[-1] + span:
                axes.axvline(due_at, color=DEADLINE_COLOR, linestyle="--", linewidth=1.2, label="due")
                axes.legend(loc="upper left", frameon=False)
            elif due_at is not None:
                # A due date far from the submissions would squash them into one line: point at it instead.
                where = 0.98 if due_at > ordered[-1] else 0.02
                arrow = "due {:%Y-%m-%d %H:%M} \u2192" if due_at > ordered[-1] else "\u2190 due {:%Y-%m-%d %H:%M}"
                axes.text(where, 0.95, arrow.format(due_at), transform=axes.transAxes, color=DEADLINE_COLOR,
                          ha="right" if where > 0.5 else "left", va="top")
            axes.set_xlim(ordered[0] - span * 0.05, ordered[-1] + span * 0.05)
            locator = AutoDateLocator()
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
            axes.set_ylim(0, len(ordered) * 1.1 + 0.5)
            axes.yaxis.get_major_locator().set_params(integer=True)
            axes.set_ylabel("submissions (cumulative)")
        axes.set_title("Submissions over time")
        return _svg(figure)


def training_curve(epochs: Sequence[dict]) -> str:
    """Loss (left axis) and accuracy (right axis) per epoch of one CIFAR-10 run."""
    with matplotlib.rc_context(_RC):
        figure, axes = _figure()
        points = [epoch for epoch in epochs if isinstance(epoch, dict)]
        if not points:
            _empty(axes, "no training curve (the CIFAR-10 stage did not run)")
            return _svg(figure)
        x = [point.get("epoch", index + 1) for index, point in enumerate(points)]
        loss_key = next((key for key in ("train_loss", "loss") if any(key in point for point in points)), None)
        if loss_key:
            axes.plot(x, [point.get(loss_key) for point in points], marker="o", color=FAIL_COLOR, label="training loss")
            axes.set_ylabel("loss")
        axes.set_xlabel("epoch")
        accuracy_axes = axes.twinx()
        accuracy_axes.grid(False)
        for key, label, color in (("train_accuracy", "training accuracy", BAR_COLOR),
                                  ("test_accuracy", "test accuracy", PASS_COLOR),
                                  ("accuracy", "accuracy", PASS_COLOR)):
            values = [point.get(key) for point in points]
            if any(isinstance(value, (int, float)) for value in values):
                accuracy_axes.plot(x, [100 * v if isinstance(v, (int, float)) else None for v in values],
                                   marker="s", color=color, label=label)
        accuracy_axes.set_ylabel("accuracy (%)")
        accuracy_axes.set_ylim(0, 100)
        accuracy_axes.spines["right"].set_visible(True)
        handles = axes.get_legend_handles_labels()[0] + accuracy_axes.get_legend_handles_labels()[0]
        if handles:
            axes.legend(handles=handles, loc="center right", frameon=False)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_title("CIFAR-10 training")
        return _svg(figure)
