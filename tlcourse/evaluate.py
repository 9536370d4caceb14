"""Evaluating a trained classifier on any class-per-folder directory (notebooks 04 and 05).

One function, :func:`evaluate_folder`, takes a model and a directory laid out
like the flowers splits (``<dir>/<class name>/<image>``): the held-out test
split, or a student's own photos. It returns an :class:`Evaluation` with the
accuracy, per-class accuracy, confusion matrix and the misclassified photos;
:func:`plot_confusion` and :func:`show_misclassified` draw them.

The model takes float pixels in [0, 255] (its preprocessing is inside it, as
:func:`tlcourse.finetune.build_head_model` builds it) and outputs class
probabilities.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .fetch import TLCourseError  # noqa: E402
from .plots import show_image, use_course_style  # noqa: E402


@dataclass(frozen=True)
class Mistake:
    """One misclassified image."""

    path: str
    true_label: str
    predicted_label: str
    confidence: float  # the model's probability for the (wrong) predicted class
    index: int         # position in the evaluation's arrays


@dataclass
class Evaluation:
    """Predictions of a model on a set of labelled images, and what follows from them.

    ``class_names`` is the model's class order; ``y_true``/``y_pred`` index
    into it; ``probabilities`` has one row per image (``file_paths`` order).
    """

    class_names: list
    file_paths: list
    y_true: np.ndarray
    y_pred: np.ndarray
    probabilities: np.ndarray
    source: str = ""

    @property
    def n_images(self) -> int:
        return int(len(self.y_true))

    @property
    def confidence(self) -> np.ndarray:
        """The probability the model gave its predicted class, per image."""
        return self.probabilities[np.arange(self.n_images), self.y_pred]

    @property
    def correct(self) -> np.ndarray:
        return self.y_true == self.y_pred

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if self.n_images else float("nan")

    @property
    def confusion_matrix(self) -> np.ndarray:
        """Counts: row = true class, column = predicted class (``class_names`` order)."""
        n = len(self.class_names)
        matrix = np.zeros((n, n), dtype=np.int64)
        np.add.at(matrix, (self.y_true, self.y_pred), 1)
        return matrix

    @property
    def per_class_accuracy(self) -> dict:
        """``{class: fraction of its images classified correctly}`` (NaN if it has none here)."""
        matrix = self.confusion_matrix
        support = matrix.sum(axis=1)
        return {name: (float(matrix[i, i] / support[i]) if support[i] else float("nan"))
                for i, name in enumerate(self.class_names)}

    def misclassified(self) -> list[Mistake]:
        """The wrongly classified images, most confident mistakes first."""
        wrong = np.flatnonzero(~self.correct)
        conf = self.confidence
        wrong = wrong[np.argsort(-conf[wrong], kind="stable")]
        return [Mistake(str(self.file_paths[i]), self.class_names[self.y_true[i]],
                        self.class_names[self.y_pred[i]], float(conf[i]), int(i)) for i in wrong]

    def summary(self) -> str:
        """Plain text: overall accuracy, per-class accuracy, the worst mistakes."""
        matrix = self.confusion_matrix
        n_right = int(np.trace(matrix))
        where = f" on {self.source}" if self.source else ""
        lines = [f"Accuracy{where}: {self.accuracy:.3f} ({n_right}/{self.n_images} images)"]
        width = max(len(str(c)) for c in self.class_names)
        for i, (name, acc) in enumerate(self.per_class_accuracy.items()):
            support = int(matrix[i].sum())
            shown = "   -  (no images)" if support == 0 else f"{acc:6.3f} ({int(matrix[i, i])}/{support})"
            lines.append(f"  {name:<{width}}  {shown}")
        mistakes = self.misclassified()
        lines.append(f"Misclassified: {len(mistakes)}")
        for m in mistakes[:5]:
            lines.append(f"  {Path(m.path).name}: {m.true_label} -> {m.predicted_label} ({m.confidence:.0%})")
        if len(mistakes) > 5:
            lines.append(f"  ... and {len(mistakes) - 5} more")
        return "\n".join(lines)


def _as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax the outputs unless they already are probabilities (a model without softmax)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.size and outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def evaluate_dataset(model, dataset, class_names=None, file_paths=None, source: str = "") -> Evaluation:
    """Evaluate on an *unshuffled* dataset of ``(images, int labels)`` batches.

    ``dataset.class_names``/``dataset.file_paths`` are used where present.
    ``class_names``: the model's classes in its output order, when the
    dataset's folders are not exactly those classes in that order (e.g. a
    student's photos of only two of the five flowers): labels are mapped by
    name.
    """
    folder_classes = list(getattr(dataset, "class_names", None) or [])
    paths = list(file_paths if file_paths is not None else getattr(dataset, "file_paths", None) or [])
    outputs, labels = [], []
    for images, y in dataset:
        outputs.append(np.asarray(model.predict_on_batch(images)))
        labels.append(np.asarray(y).reshape(-1))
    if not outputs:
        raise TLCourseError(f"No images to evaluate{' in ' + source if source else ''}.")
    probabilities = _as_probabilities(np.concatenate(outputs))
    y_true = np.concatenate(labels).astype(np.int64)
    n_out = probabilities.shape[1]

    if class_names is None:
        class_names = folder_classes or [str(i) for i in range(n_out)]
        if len(class_names) != n_out:
            raise TLCourseError(
                f"{source or 'The dataset'} has {len(class_names)} class folders {class_names} but the "
                f"model predicts {n_out} classes. Pass class_names=<the model's classes, in training "
                "order> so the folders are matched to the model's outputs by name."
            )
    else:
        class_names = [str(c) for c in class_names]
        if len(class_names) != n_out:
            raise TLCourseError(f"class_names has {len(class_names)} names, the model predicts {n_out} classes.")
        if folder_classes:
            unknown = [c for c in folder_classes if c not in class_names]
            if unknown:
                raise TLCourseError(
                    f"Folders {unknown} in {source or 'the dataset'} are not classes the model knows "
                    f"({class_names}). Rename or remove them: every folder must be one of these classes."
                )
            remap = np.array([class_names.index(c) for c in folder_classes])
            y_true = remap[y_true]

    if paths and len(paths) != len(y_true):
        raise TLCourseError(f"{len(paths)} file paths for {len(y_true)} images: was the dataset shuffled "
                            "or filtered? Evaluate an unshuffled dataset.")
    return Evaluation(class_names=list(class_names), file_paths=paths or [""] * len(y_true),
                      y_true=y_true, y_pred=probabilities.argmax(axis=1).astype(np.int64),
                      probabilities=probabilities, source=source)


def evaluate_folder(model, directory, image_size: int | None = None, batch_size: int = 32,
                    class_names=None) -> Evaluation:
    """Evaluate ``model`` on every image of a class-per-folder ``directory``.

    Works for the held-out test split and for a student's own photos
    (``<dir>/<class>/<photo>``). ``image_size``: default the model's input
    size. ``class_names``: the model's classes in output order; needed when
    the folder does not hold exactly those classes (a subset is fine: labels
    are matched by folder name). Returns an :class:`Evaluation`; print
    ``evaluation.summary()``, draw :func:`plot_confusion` and
    :func:`show_misclassified`.
    """
    from .data import image_dataset

    directory = Path(directory)
    if not directory.is_dir():
        raise TLCourseError(f"{directory} is not a folder. Expected <folder>/<class name>/<images>.")
    if image_size is None:
        shape = getattr(model, "input_shape", None)
        image_size = int(shape[1]) if shape and len(shape) == 4 and shape[1] else 224
    dataset = image_dataset(str(directory), image_size=image_size, batch_size=batch_size,
                            shuffle=False, label_mode="int", verbose=False)
    return evaluate_dataset(model, dataset, class_names=class_names, source=_shown_path(directory))


def _shown_path(directory: Path) -> str:
    """A folder as a student should read it: relative to the project when inside it."""
    from .config import project_root

    try:
        return str(directory.resolve().relative_to(project_root().resolve()))
    except ValueError:
        return str(directory)


def plot_confusion(evaluation: Evaluation, normalize: bool = False, ax=None):
    """The confusion matrix as a heat map with the counts (or row fractions) written in."""
    use_course_style()
    matrix = evaluation.confusion_matrix
    shown = matrix.astype(float)
    if normalize:
        support = matrix.sum(axis=1, keepdims=True)
        shown = np.divide(shown, support, out=np.zeros_like(shown), where=support > 0)
    names = evaluation.class_names
    n = len(names)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * n, 0.8 + 0.8 * n))
    else:
        fig = ax.figure
    image = ax.imshow(shown, cmap="Blues", vmin=0)
    ax.grid(False)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (accuracy {evaluation.accuracy:.1%}, {evaluation.n_images} images)")
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(n):
        for j in range(n):
            text = f"{shown[i, j]:.2f}" if normalize else str(matrix[i, j])
            ax.text(j, i, text, ha="center", va="center",
                    color="white" if shown[i, j] > threshold else "black", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def show_misclassified(evaluation: Evaluation, max_images: int = 12, ncols: int = 4):
    """A gallery of the misclassified photos (most confident first): true, predicted, confidence."""
    from PIL import Image

    use_course_style()
    mistakes = evaluation.misclassified()[:max_images]
    if not mistakes:
        fig, ax = plt.subplots(figsize=(5, 1.2))
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"No misclassified images ({evaluation.n_images} of {evaluation.n_images} right).",
                ha="center", va="center")
        return fig
    ncols = max(1, min(ncols, len(mistakes)))
    nrows = -(-len(mistakes) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, m in zip(axes.flat, mistakes):
        with Image.open(m.path) as img:
            show_image(ax, np.asarray(img.convert("RGB")))
        ax.set_title(f"true: {m.true_label}\npred: {m.predicted_label} ({m.confidence:.0%})", fontsize=9)
    total = len(evaluation.misclassified())
    fig.suptitle(f"Misclassified: {len(mistakes)} of {total} shown ({evaluation.n_images} images)")
    fig.tight_layout()
    return fig
