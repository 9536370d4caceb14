"""Interactive pickers for the notebooks (ipywidgets 8).

Widgets are plumbing: each notebook calls one function and gets a ready
widget; the lesson (the model, the Keras calls) stays in the notebook.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from .fetch import TLCourseError


def photo_picker(model, photos: dict, classify=None):
    """A dropdown of sample photos plus a file upload; shows the photo and its top-5.

    ``classify(model, path)`` defaults to :func:`tlcourse.imagenet.classify`.
    A file that is not an image gets a plain message and the widget keeps working.
    Returns the widget (display it, or let it be the cell's value).
    """
    if classify is None:
        from .imagenet import classify
    dropdown = widgets.Dropdown(options=sorted(photos), description="photo")
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="or upload")
    out = widgets.Output()

    def show(path, name):
        out.clear_output(wait=True)
        with out:
            try:
                top5 = classify(model, path)
            except TLCourseError as exc:
                print(f"Cannot classify {name}: {exc}")
                return
            from .plots import show_top5
            fig = show_top5(path, top5, title=name)
            display(fig)
            plt.close(fig)

    def on_pick(change=None):
        show(photos[dropdown.value], dropdown.value)

    def on_upload(change):
        if not upload.value:
            return
        item = upload.value[0]
        suffix = Path(item["name"]).suffix or ".img"
        with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as f:
            f.write(bytes(item["content"]))
        show(f.name, item["name"])

    dropdown.observe(on_pick, names="value")
    upload.observe(on_upload, names="value")
    on_pick()
    return widgets.VBox([widgets.HBox([dropdown, upload]), out])
