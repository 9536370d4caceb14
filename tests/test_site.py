"""The course site (tlcourse.course.site): a Jupyter Book of an executed build, read offline.

One small executed notebook (a formula, a matplotlib image, a saved widget view) and its
results JSON are written into a temporary build folder; the site built from it must show
them without executing anything again, and must load nothing from the internet.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupyter_book")

from tlcourse.course import site  # noqa: E402
from tlcourse.lesson.errors import TLCourseError  # noqa: E402

SUMMARY = "This notebook checks that a site shows formulas, images and widgets offline."
LESSON = f"""# 1. A tiny lesson

*Transfer learning with MobileNet, part 1 of 1.*

{SUMMARY} Inline: $a^2 + b^2 = c^2$. Display, inside the paragraph as Jupyter allows:
$$\\frac{{1}}{{N}} + \\frac{{1}}{{D_K^2}}$$
and the text goes on."""


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [1, 4, 9])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _executed_notebook(path, png: bytes) -> None:
    """A notebook as nbclient leaves it: outputs and the widget state in its metadata.

    The code cells raise if run, so a site that executed them again would show errors.
    """
    import ipywidgets
    from ipywidgets.embed import embed_data

    slider = ipywidgets.IntSlider(value=3, min=0, max=10, description="k")
    data = embed_data(views=[slider])
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": data["manager_state"]}
    plot = nbformat.v4.new_code_cell("raise RuntimeError('executed again')", execution_count=1)
    plot.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"},
        )
    ]
    widget = nbformat.v4.new_code_cell("raise RuntimeError('executed again')", execution_count=2)
    widget.outputs = [
        nbformat.v4.new_output(
            "execute_result",
            execution_count=2,
            data={
                "application/vnd.jupyter.widget-view+json": data["view_specs"][0],
                "text/plain": "IntSlider(value=3, description='k', max=10)",
            },
        )
    ]
    nb.cells = [nbformat.v4.new_markdown_cell(LESSON), plot, widget]
    nbformat.validate(nb)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A temporary build folder (never ``build/``) and the site built from it."""
    build = tmp_path_factory.mktemp("build")
    png = _png()
    _executed_notebook(build / "01_tiny.ipynb", png)
    (build / "results").mkdir()
    (build / "results" / "curve.png").write_bytes(png)
    (build / "results" / "01_tiny.json").write_text(
        json.dumps(
            {
                "top1": 0.85,
                "cached_s_per_epoch": 0.0843,
                "parameters": 4253864,
                "peak_memory_mib": 512.0,
                "cost_table": [
                    {"layer": "standard", "mult_adds": 1000000},
                    {"layer": "separable", "mult_adds": 120000},
                ],
                "figures": [{"path": "results/curve.png", "caption": "Accuracy against labels"}],
            }
        )
    )
    return build, site.build_site(build, verbose=False)


def _page(folder, name) -> str:
    return (folder / name).read_text(encoding="utf-8")


def test_pages_in_course_order_with_navigation(built):
    build, out = built
    assert out == build / "site"
    for name in ("index.html", "01_tiny.html", "results.html", "search.html", "searchindex.js"):
        assert (out / name).is_file(), name
    index = _page(out, "index.html")
    assert "1. A tiny lesson" in index and SUMMARY in index  # title page: what the part teaches
    assert 'href="01_tiny.html"' in index
    lesson = _page(out, "01_tiny.html")
    assert re.search(r'class="[^"]*\bprev\b[^"]*"|left-prev', lesson)  # previous / next links
    assert 'href="results.html"' in lesson
    assert not list(build.glob(".site-*")), "the staging folder was left behind"


def test_outputs_shown_as_executed_not_rerun(built):
    lesson = _page(built[1], "01_tiny.html")
    assert "executed again" in lesson  # the cell source is shown ...
    assert lesson.count("RuntimeError") == 2 and "Traceback" not in lesson  # ... never run


def test_formulas_are_math_not_dollar_text(built):
    lesson = _page(built[1], "01_tiny.html")
    assert re.search(r'<span class="math[^"]*">\\\(a\^2 \+ b\^2 = c\^2\\\)</span>', lesson)
    assert "\\frac{1}{N} + \\frac{1}{D_K^2}" in lesson
    assert "$" not in re.sub(r"<script.*?</script>", "", lesson, flags=re.S)  # no raw TeX left
    mathjax = re.search(r'<script[^>]*src="(_static/[^"?]*tex-chtml[^"?]*\.js)', lesson)
    assert mathjax and (built[1] / mathjax.group(1)).is_file()


def test_images_are_in_the_site(built):
    out = built[1]
    for name in ("01_tiny.html", "results.html"):
        sources = re.findall(r'<img[^>]*src="([^"]+)"', _page(out, name))
        assert sources, f"no image on {name}"
        for src in sources:
            assert src.startswith("data:image/") or (out / src).is_file(), src


def test_widget_view_saved_and_its_manager_served_locally(built):
    out = built[1]
    lesson = _page(out, "01_tiny.html")
    assert "application/vnd.jupyter.widget-state+json" in lesson
    assert "application/vnd.jupyter.widget-view+json" in lesson
    manager = re.search(r'<script[^>]*src="(_static/[^"?]*html-manager[^"?]*embed\.js)', lesson)
    assert manager and (out / manager.group(1)).is_file()


def test_results_page_is_a_labelled_table(built):
    results = _page(built[1], "results.html")
    for text in (
        "Top-1",
        "0.85",
        "Cached (s) per epoch",
        "0.0843",
        "4,253,864",
        "Cost table",
        "1,000,000",
        "Accuracy against labels",
    ):
        assert text in results, text
    assert "cached_s_per_epoch" not in results and "=0.0843" not in results
    assert "Peak memory (MiB)" in results  # in the build table, not among the headline numbers


def test_no_page_loads_anything_remote(built):
    out = built[1]
    remote = re.compile(
        r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", re.I
    )
    for page in out.rglob("*.html"):
        assert not remote.search(page.read_text(encoding="utf-8")), page.name
    assert site.remote_references(out) == []


def test_no_notebooks_is_a_clear_error(tmp_path):
    with pytest.raises(TLCourseError, match="make run"):
        site.build_site(tmp_path, verbose=False)
    assert not (tmp_path / "site").exists()


def test_a_tarball_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_DATA", str(tmp_path))

    def fake_pack(spec, dest):
        tarball = dest / "fake.tgz"
        with tarfile.open(tarball, "w:gz") as tar:
            info = tarfile.TarInfo("package/es5/tex-chtml-full.js")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        return tarball

    monkeypatch.setattr(site, "_npm_pack", fake_pack)
    with pytest.raises(TLCourseError, match="checksum"):
        site.web_assets(verbose=False)
    assert not any((tmp_path / "site-assets").glob("*/es5")), "an unverified library was kept"


@pytest.mark.parametrize(
    "key, text",
    [
        ("cached_s_per_epoch", "Cached (s) per epoch"),
        ("peak_memory_mib", "Peak memory (MiB)"),
        ("top5", "Top-5"),
        ("vgg16_ratio_mult_adds", "VGG16 ratio mult adds"),
    ],
)
def test_labels(key, text):
    assert site.label(key) == text
