"""tlcourse: the plumbing behind the transfer-learning notebooks.

Import what a notebook needs from its module, e.g.
``from tlcourse.config import fast_mode, pick, set_seed``. Each module names
the notebook that introduces it:

- ``config``     fast mode, seeds, paths (every notebook)
- ``fetch``      safe downloads and registry wheels (provisioning)
- ``provision``  Keras's offline ImageNet cache (``make setup``; notebook 01)
- ``imagenet``   ``prepare_image``, the classifier, sample photos (notebook 01)
- ``data``       the flowers splits and image folders (notebooks 02-05)
- ``features``   frozen-base features and probes (notebooks 02, 04)
- ``finetune``   freezing, unfreezing, differential learning rates (04, 05)
- ``evaluate``   test-set evaluation of any class-per-folder directory (04, 05)
- ``costs``      convolution costs (notebook 06)
- ``plots``, ``widgets``, ``report``  the course's figures, pickers and numbers
"""
import logging as _logging
import os as _os
import warnings as _warnings

__version__ = "0.1.0"

# TensorFlow's C++ INFO/WARNING lines (oneDNN, CPU features) are noise in a lecture.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras 3 warns on every fit(tf.data.Dataset) that fit's default shuffle=True is ignored;
# the course's datasets shuffle themselves (tlcourse.data.image_dataset).
_warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed, but will be ignored")
# ... and TensorFlow logs a "triggered tf.function retracing" warning when several models
# predict in one kernel (notebook 5 evaluates five). Errors still show.
_logging.getLogger("tensorflow").setLevel(_logging.ERROR)
