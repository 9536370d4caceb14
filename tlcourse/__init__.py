"""tlcourse: the helper package behind the transfer-learning notebooks, in two sides.

- ``tlcourse.lesson``: what the notebooks use, re-exported here (``import tlcourse as tl``).
- ``tlcourse.course``: the machinery ``make`` runs (fetching, provisioning, the lecture build, the
  course site, homework); it may import the lesson side, a lesson never imports it.

``import tlcourse`` itself loads nothing heavy. The first ``tl.<name>`` a notebook reads loads
the lesson module that defines it, after setting up TensorFlow quietly
(:func:`tlcourse.lesson.config.quiet_tensorflow`), so that the notebook's own ``import keras``
prints no start-up lines.
"""

from __future__ import annotations

import importlib

__version__ = "0.3.0"

# name -> the lesson module that defines it (see the README's table of the API)
_LESSON = {
    "config": [
        "build_dir",
        "fast_mode",
        "native_stderr_muted",
        "pick",
        "quiet_tensorflow",
        "set_seed",
    ],
    "errors": ["TLCourseError"],
    "data": ["augmentation", "flowers_splits"],
    "imagenet": [
        "classify",
        "imagenet_class_names",
        "labelled_photos",
        "prepare_image",
        "sample_photos",
        "search_classes",
        "true_label",
    ],
    "train": [
        "block_of",
        "count_params",
        "differential_optimizer",
        "find_base",
        "layer_groups",
        "predict_array",
        "predictions",
        "save_model",
        "scratch_callbacks",
        "scratch_model",
        "train_from_scratch",
        "train_head",
        "unfreeze_from",
        "unfreeze_table",
    ],
    "stats": ["accuracy", "compare", "holm", "mcnemar", "proportion", "verdict", "verdicts"],
    "cam": ["cam_parts", "class_activation_maps", "show_cam"],
    "robustness": ["CORRUPTIONS", "corrupt", "interpolate"],
    "ondevice": ["run_tflite"],
    "plots": [
        "feature_maps",
        "plot_history",
        "scatter_classes",
        "show_image",
        "show_misclassified",
        "show_top5",
        "use_course_style",
    ],
    "report": ["record"],
    "reuse": ["reuse"],
    "widgets": ["cost_explorer", "photo_picker", "unfreeze_slider"],
}
_WHERE = {name: module for module, names in _LESSON.items() for name in names}
_MODULES = {"costs"}  # lesson modules exported whole: ``tl.costs.conv2d_cost``

__all__ = sorted(_WHERE) + sorted(_MODULES)  # noqa: PLE0605 (built from the table above)


def __getattr__(name: str):
    """PEP 562: load ``tl.<name>`` from its lesson module on first use."""
    if name not in _WHERE and name not in _MODULES:
        raise AttributeError(f"module 'tlcourse' has no attribute {name!r}")
    from .lesson.config import quiet_tensorflow

    quiet_tensorflow()
    if name in _MODULES:
        value = importlib.import_module(f".lesson.{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".lesson.{_WHERE[name]}", __name__), name)
    globals()[name] = value  # the next read does not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
