"""What a frozen network sees: features, ImageNet labels per class, feature maps.

Used by notebook 02 (is it the features or the head?) and notebook 04
(training a head on cached features).
"""
from __future__ import annotations

import collections
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def predict_with_labels(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over a (images, labels) dataset once; return outputs and labels.

    The dataset must not shuffle or augment (each photo's output is computed once,
    in order). Works for class probabilities and for pooled features alike.
    """
    # model.predict runs a compiled graph: an eager ``model(images)`` per batch
    # would need about three times the memory (2.9 GiB against 1.0 GiB at batch 32).
    outputs = model.predict(dataset, verbose=0)
    labels = np.concatenate([np.asarray(y) for _, y in dataset])
    return outputs, labels


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names Keras's ``decode_predictions`` uses, by index."""
    import json

    from .provision import CLASS_INDEX, ensure_imagenet_files

    path = ensure_imagenet_files(verbose=False)[CLASS_INDEX]
    index = json.loads(path.read_text())
    return [index[str(i)][1] for i in range(1000)]


def search_classes(word: str) -> list[tuple[int, str]]:
    """ImageNet classes whose name has ``word`` as a whole word, as (index, name).

    Case-insensitive; words are separated by underscores (``yellow_lady's_slipper``).
    """
    word = word.lower()
    return [(i, n) for i, n in enumerate(imagenet_class_names()) if word in n.lower().split("_")]


def top1_table(probabilities: np.ndarray, labels: np.ndarray, class_names, flower_classes,
               most_common: int = 3) -> list[dict]:
    """Per flower class: its most frequent top-1 ImageNet labels and the share that is a flower.

    ``flower_classes``: indices of the ImageNet classes that are flowers.
    Returns one dict per class: ``class``, ``n``, ``top1`` (list of (name, count)),
    ``flower_share`` (fraction of top-1 answers that are an ImageNet flower class).
    """
    names = imagenet_class_names()
    top1 = probabilities.argmax(axis=1)
    rows = []
    for k, cls in enumerate(class_names):
        picks = top1[labels == k]
        counts = collections.Counter(names[i] for i in picks)
        rows.append({
            "class": cls,
            "n": int(len(picks)),
            "top1": counts.most_common(most_common),
            "flower_share": float(np.isin(picks, list(flower_classes)).mean()) if len(picks) else 0.0,
        })
    return rows


def format_top1_table(rows) -> str:
    """The :func:`top1_table` rows as a plain-text table."""
    lines = [f"{'class':11s} {'n':>4s}  {'top-1 is a flower':>17s}  most frequent top-1 ImageNet labels"]
    for r in rows:
        common = ", ".join(f"{name} ({count})" for name, count in r["top1"])
        lines.append(f"{r['class']:11s} {r['n']:4d}  {r['flower_share']:17.0%}  {common}")
    return "\n".join(lines)


def layer_activations(model, layer_names, image_batch) -> dict[str, np.ndarray]:
    """The outputs of the named layers of ``model`` for a preprocessed image batch."""
    import keras

    probe = keras.Model(model.input, [model.get_layer(n).output for n in layer_names])
    outs = probe(image_batch, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {n: np.asarray(o) for n, o in zip(layer_names, outs)}
