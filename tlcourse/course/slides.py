"""Slides for the lecture: each executed notebook of a build as a reveal.js deck that reads offline.

nbconvert's slides exporter turns a notebook into a deck by its cells' slideshow metadata (slide,
subslide, fragment, skip); machinery cells (tagged ``hide-input``) and widget cells (they need a
running kernel: present those live with RISE) are skipped. reveal.js, require.js and MathJax are
served from the deck's own folder (fetched once from npm by ``make setup``, hash-checked), so a
deck opens from the file system with no network.

    python -m tlcourse.course.slides [BUILD_FOLDER]      # writes BUILD_FOLDER/slides/
"""

import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..lesson.config import build_dir
from ..lesson.errors import TLCourseError
from .fetch import manifest
from .site import remote_references, web_assets

DECK_ASSETS = ("reveal.js", "requirejs", "mathjax")
STATIC = "_static"
TEMPLATES = Path(__file__).parent / "templates"


def deck_notebook(nb):
    """The notebook as the deck shows it: widget cells and machinery skipped, no widget state."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        views = [
            o
            for o in cell.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        if views or "hide-input" in cell.metadata.get("tags", []):
            cell.metadata.setdefault("slideshow", {})["slide_type"] = "skip"
    return nb


def exporter():
    """nbconvert's ``SlidesExporter`` with the course's template and every script served locally."""
    from nbconvert import SlidesExporter

    entries = {name: manifest()["site_assets"][name]["entry"] for name in DECK_ASSETS}
    return SlidesExporter(
        extra_template_basedirs=[str(TEMPLATES)],
        template_name="tlcourse_slides",
        reveal_url_prefix=f"{STATIC}/reveal.js",
        reveal_theme="white",
        reveal_scroll=True,
        reveal_number="c/t",
        require_js_url=f"{STATIC}/requirejs/{entries['requirejs']}",
        mathjax_url=f"{STATIC}/mathjax/{entries['mathjax']}",
        jquery_url="",
        font_awesome_url="",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def count_slides(html: str) -> int:
    """The number of top-level and vertical slides in a deck's HTML (its ``<section>`` leaves)."""
    import re

    sections = len(re.findall(r"<section\b", html))
    wrappers = len(re.findall(r"<section\b[^>]*>(?=\s*<section\b)", html))  # hold vertical slides
    return sections - wrappers


def build_slides(build=None, verbose: bool = True) -> Path:
    """Write ``<build>/slides/``: a ``NN_name.slides.html`` per executed notebook, assets beside."""
    import nbformat

    build = Path(build) if build is not None else build_dir()
    notebooks = sorted(build.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise TLCourseError(
            f"No executed notebooks (NN_name.ipynb) in {build}: run the lecture build first "
            "(`make run`), then make the slides."
        )
    start = time.perf_counter()
    assets = web_assets(verbose=verbose)
    with tempfile.TemporaryDirectory(prefix=".slides-", dir=build) as stage:
        out = Path(stage) / "slides"
        for name in DECK_ASSETS:
            shutil.copytree(assets[name], out / STATIC / name)
        slides = exporter()
        for path in notebooks:
            html, _ = slides.from_notebook_node(deck_notebook(nbformat.read(path, as_version=4)))
            (out / f"{path.stem}.slides.html").write_text(html, encoding="utf-8")
            if verbose:
                print(f"  {path.stem}: {count_slides(html)} slides")
        remote = remote_references(out)
        if remote:
            raise TLCourseError(
                "A deck would load files from the internet:\n  " + "\n  ".join(remote[:10])
            )
        if (build / "slides").exists():
            os.replace(build / "slides", Path(stage) / "previous")
        os.replace(out, build / "slides")
    if verbose:
        seconds = time.perf_counter() - start
        print(f"Slides: {len(notebooks)} decks in {seconds:.0f} s -> {build / 'slides'}")
    return build / "slides"


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        build_slides(args[0] if args else None)
    except TLCourseError as exc:
        print(f"\nThe slides were not made: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
