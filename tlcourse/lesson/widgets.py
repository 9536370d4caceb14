"""The notebooks' interactive views (ipywidgets 8).

01's photo picker, 05's unfreeze slider, 06's cost explorer. Each returns a widget; the lesson's
Keras calls stay in the notebook.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from .errors import TLCourseError


def photo_picker(model, photos: dict):
    """A dropdown of sample photos and an upload button.

    Shows the photo beside its top-5 (01); an upload that is not an image gets one line naming it.
    ``model``: an ImageNet classifier; ``photos``: name -> path, e.g.
    :func:`~tlcourse.lesson.imagenet.sample_photos`.
    """
    from .imagenet import classify
    from .plots import show_top5

    dropdown = widgets.Dropdown(options=sorted(photos), description="photo")
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="or upload")
    out = widgets.Output()

    def show(path, name):
        out.clear_output(wait=True)
        with out:
            try:
                top5 = classify(model, path)
            except TLCourseError as exc:
                print(exc)  # "<file name> is not an image this course can read: ..."
                return
            fig = show_top5(path, top5, title=name)
            display(fig)
            plt.close(fig)

    def on_upload(change):
        if not upload.value:
            return
        item = upload.value[0]
        name = Path(item["name"]).name or "upload"  # the file's own name, never a browser path
        with tempfile.TemporaryDirectory(prefix="tlcourse-upload-") as folder:  # deleted on exit
            path = Path(folder) / name
            path.write_bytes(bytes(item["content"]))
            show(path, name)

    dropdown.observe(lambda change: show(photos[dropdown.value], dropdown.value), names="value")
    upload.observe(on_upload, names="value")
    show(photos[dropdown.value], dropdown.value)
    return widgets.VBox([widgets.HBox([dropdown, upload]), out])


def unfreeze_slider(base, value: int = 10):
    """A slider "unfreeze from block" 0..14 showing how many base parameters become trainable.

    It only shows the cost; apply a choice with ``unfreeze_from(base, slider.value)``.
    """
    from .train import N_BLOCKS, count_params, unfreeze_table

    table, total = unfreeze_table(base), count_params(base.weights)
    slider = widgets.IntSlider(
        value=value,
        min=0,
        max=N_BLOCKS,
        description="unfreeze from",
        style={"description_width": "initial"},
    )
    label = widgets.HTML()

    def update(change=None):
        b = slider.value
        which = "nothing (head only)" if b == N_BLOCKS else f"blocks {b}-13"
        label.value = (
            f"{which}: {table[b]:,} of {total:,} base parameters trainable ({table[b] / total:.1%})"
        )

    slider.observe(update, names="value")
    update()
    return widgets.VBox([slider, label])


def cost_explorer(d_k: int = 3, m: int = 32, n: int = 64, d_f: int = 112):
    """Sliders for D_K, M, N and D_F: both convolutions' costs and their ratio, live (06)."""
    from . import costs

    def show(d_k, m, n, d_f):
        display(costs.cost_summary(d_k, m, n, d_f))
        fig = costs.plot_separable_ratio(kernel_sizes=tuple(sorted({3, 5, 7, d_k})), mark=(n, d_k))
        fig.set_size_inches(6.5, 3.4)
        plt.show()
        plt.close(fig)

    layout = widgets.Layout(width="420px")
    sliders = {
        name: widgets.IntSlider(value, min=1, max=top, description=label, layout=layout)
        for name, value, top, label in [
            ("d_k", d_k, 11, "D_K"),
            ("m", m, 1024, "M"),
            ("n", n, 1024, "N"),
            ("d_f", d_f, 224, "D_F"),
        ]
    }
    return widgets.interactive(show, **sliders)
