"""The course's one plotting style and its recurring figures (each returns its Figure).

Every plot helper takes the data first and ``ax=None`` (or ``axes=None``) last: without axes it
makes its own figure. A notebook applies the style once, with ``tl.use_course_style()``.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

COURSE_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 96,
    "savefig.dpi": 96,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.frameon": False,
    "image.cmap": "viridis",
}


def use_course_style() -> None:
    """Apply the course's matplotlib settings to every figure that follows (idempotent)."""
    mpl.rcParams.update(COURSE_STYLE)


def show_image(image, title: str | None = None, ax=None):
    """Draw an RGB image without axes; returns the Figure.

    ``image``: uint8, or floats in [0, 255] or [0, 1].
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = image / 255.0 if image.max() > 1.0 else image
        image = np.clip(image, 0.0, 1.0)
    ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def show_top5(image, top5, title: str | None = None, axes=None):
    """A photo beside a horizontal bar chart of its top-5 ``decode_predictions``.

    ``image``: a path or an array; ``top5``: ``[(wnid, label, probability), ...]``. Returns the
    Figure.
    """
    from PIL import Image

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(8, 2.6), gridspec_kw={"width_ratios": [1, 1.4]})
    else:
        fig = axes[0].figure
    if not isinstance(image, np.ndarray):
        with Image.open(image) as img:
            image = np.asarray(img.convert("RGB"))
    show_image(image, title, ax=axes[0])
    labels = [label.replace("_", " ") for _, label, _ in top5][::-1]
    probs = [p for _, _, p in top5][::-1]
    axes[1].barh(labels, probs, color="C0")
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel("probability")
    for y, p in enumerate(probs):
        axes[1].text(min(p + 0.02, 0.85), y, f"{p:.2f}", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def scatter_classes(points, labels, class_names, title: str = "", ax=None):
    """A 2-D scatter of ``points`` coloured by class, with a legend. Returns the Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
    else:
        fig = ax.figure
    for k, name in enumerate(class_names):
        sel = np.asarray(labels) == k
        ax.scatter(points[sel, 0], points[sel, 1], s=10, alpha=0.7, label=name, color=f"C{k}")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=8, loc="best")
    return fig


def feature_maps(activations, title: str = "", n: int = 16, cols: int = 8):
    """The first ``n`` channels of one image's activations (H, W, C) as a grid."""
    activations = np.asarray(activations)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1 + 0.4))
    for k, ax in enumerate(np.ravel(axes)):
        ax.set_axis_off()
        if k < min(n, activations.shape[-1]):
            ax.imshow(activations[..., k], cmap="magma")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history, title: str = "", metrics=("accuracy", "loss"), mark_epoch=None):
    """Learning curves (train and validation) from a Keras ``History`` or its ``.history`` dict.

    ``mark_epoch``: draw a vertical line there (e.g. the epoch early stopping restored).
    """
    h = history.history if hasattr(history, "history") else history
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.4))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        epochs = np.arange(1, len(h[metric]) + 1)
        ax.plot(epochs, h[metric], "o-", label="train", ms=3)
        if f"val_{metric}" in h:
            ax.plot(epochs, h[f"val_{metric}"], "o-", label="validation", ms=3)
        if mark_epoch is not None:
            ax.axvline(mark_epoch, color="gray", ls="--", lw=1, label=f"best epoch ({mark_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_misclassified(
    paths, labels, probabilities, class_names, max_images: int = 8, ncols: int = 4
):
    """The misclassified photos, the most confident mistake first; returns the Figure.

    Each is titled with its true class, the predicted one and the confidence.
    """
    from PIL import Image

    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:max_images]
    if not len(wrong):
        fig, ax = plt.subplots(figsize=(5, 1))
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"No mistakes on these {len(labels)} photos.", ha="center", va="center")
        return fig
    ncols = min(ncols, len(wrong))
    nrows = -(-len(wrong) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, wrong):
        with Image.open(paths[i]) as img:
            show_image(np.asarray(img.convert("RGB")), ax=ax)
        ax.set_title(
            f"true: {class_names[labels[i]]}\npred: {class_names[predicted[i]]} "
            f"({probabilities[i, predicted[i]]:.0%})",
            fontsize=9,
        )
    fig.tight_layout()
    return fig
