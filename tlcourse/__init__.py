"""tlcourse: the helper package behind the transfer-learning notebooks, in two sides.

- ``tlcourse.lesson``: what the notebooks use, re-exported here (``import tlcourse as tl``).
- ``tlcourse.course``: the machinery ``make`` runs (fetching, provisioning, the lecture build, the
  course site, homework); it may import the lesson side, a lesson never imports it."""
import logging as _logging
import os as _os
import warnings as _warnings

__version__ = "0.2.0"



def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with fd 2 muted: TF 2.21 writes C++ start-up lines there
    (oneDNN, CUDA probing) whatever TF_CPP_MIN_LOG_LEVEL says, and a notebook shows them in red."""
    import sys

    from .lesson.config import native_stderr_muted

    if "tensorflow" not in sys.modules:
        _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with native_stderr_muted():
            import tensorflow as tf

            tf.config.list_physical_devices()


# Set once, for every notebook: quiet start-up, and no "retracing" warnings when several
# models predict in one kernel. Errors still show.
_import_tensorflow_quietly()
_logging.getLogger("tensorflow").setLevel(_logging.ERROR)
_warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed, but will be ignored")

from .lesson import costs  # noqa: E402
from .lesson.cam import cam_parts, class_activation_maps, show_cam  # noqa: E402
from .lesson.config import build_dir, data_dir, fast_mode, native_stderr_muted, pick, set_seed  # noqa: E402
from .lesson.data import augmentation, flowers_splits  # noqa: E402
from .lesson.errors import TLCourseError  # noqa: E402
from .lesson.imagenet import (class_names, classify, labelled_photos, prepare_image,  # noqa: E402
                              sample_photos, search_classes, true_label)
from .lesson.ondevice import run_tflite  # noqa: E402
from .lesson.plots import (feature_maps, plot_history, scatter_classes, show_image,  # noqa: E402
                           show_misclassified, show_top5)
from .lesson.report import record  # noqa: E402
from .lesson.stats import accuracy, compare, mcnemar, verdict  # noqa: E402
from .lesson.train import (block_of, count_params, differential_optimizer, find_base,  # noqa: E402
                           layer_groups, predictions, save_model, train_head, unfreeze_from,
                           unfreeze_table)
from .lesson.widgets import REOPEN_HINT, cost_explorer, photo_picker, unfreeze_slider  # noqa: E402
