"""The training curve as a picture (SVG, base64) for the student's and the instructor's report."""

from __future__ import annotations

import io


def curve_image(curve: list[dict], test_accuracy: float | None, target: float) -> dict:
    """Loss and train accuracy per epoch (and the final test accuracy) as an SVG, base64-encoded."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    plt.rcParams["svg.hashsalt"] = "cifar10-curve"  # stable element ids: same run, same bytes
    epochs = [entry["epoch"] for entry in curve]
    figure = Figure(figsize=(7.0, 3.0))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [entry.get("loss") for entry in curve], marker="o", color="#1f77b4")
    loss_axes.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy (smoothed labels)")
    accuracy_axes.plot(epochs, [entry.get("train_accuracy") for entry in curve], marker="o", color="#2ca02c",
                       label="train (augmented)")
    accuracy_axes.axhline(target, color="#999999", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    if test_accuracy is not None:
        accuracy_axes.plot([epochs[-1]], [test_accuracy], marker="*", markersize=12, color="#d62728",
                           linestyle="none", label=f"test {test_accuracy:.1%}")
    accuracy_axes.set(title="Accuracy", xlabel="epoch", ylim=(0, 1))
    accuracy_axes.legend(loc="lower right", fontsize=8)
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return {"format": "svg", "encoding": "base64", "data": base64.b64encode(buffer.getvalue()).decode("ascii")}
