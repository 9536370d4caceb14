"""The course site: the lecture build published as a Jupyter Book that reads offline.

``make run`` executes the notebooks into ``build/`` (``build-fast/`` in fast mode); this module
turns that folder into a book in ``<build>/site/``, without executing anything again:

- a title page: the lecture's title and, per notebook, its title and what it teaches;
- the executed notebooks in course order, with a table of contents, next/previous links
  and search (Jupyter Book 1.x: Sphinx, ``sphinx-book-theme``, MyST-NB);
- a results page: each notebook's headline numbers (``<build>/results/<notebook>.json``,
  written by :func:`tlcourse.lesson.report.record`) as labelled tables, and its figures.

Nothing on a page is fetched from the internet when it is read. The two browser libraries
that Jupyter Book would load from a CDN, MathJax (formulas) and ``@jupyter-widgets/html-manager``
(the saved views of ipywidgets), are fetched once from the npm registry with ``npm pack``,
checked against the hashes pinned in :data:`WEB_ASSETS`, kept in ``data/site-assets/`` and
copied into every site.

    python -m tlcourse.course.site [BUILD_FOLDER]
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ..lesson.config import build_dir, data_dir
from ..lesson.errors import TLCourseError

TITLE = "Transfer learning with MobileNet"
LECTURE = ("After the lecture *Transfer Learning* by Marios Mattheakis "
           "(CS109B Data Science 2, Advanced Section 1).")

# The browser libraries the site serves itself, as published on the npm registry.
# ``integrity`` is npm's own checksum of the package tarball; ``keep`` selects what is copied.
WEB_ASSETS = {
    "mathjax": {
        "package": "mathjax@3.2.2",
        "integrity": "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "keep": r"LICENSE|es5/tex-chtml-full\.js|es5/(a11y|input|output|sre|ui)/.+",
        "entry": "es5/tex-chtml-full.js",
    },
    "html-manager": {
        "package": "@jupyter-widgets/html-manager@1.0.15",
        "integrity": "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        "keep": r"LICENSE|dist/embed\.js|dist/embed\.js\.LICENSE\.txt|dist/[0-9a-f]+\.(woff2?|ttf|eot|svg)",
        "entry": "dist/embed.js",
    },
}
STATIC = "tlcourse-web"  # the assets' folder inside the site's _static/

# html-manager 1.x typesets every widget label through MathJax 2's ``MathJax.Hub.Queue``; with
# MathJax 3 on the page that call throws (a console error per label, and a risk of a view
# rendered half). Loaded on widget pages before the manager, this routes the call to
# MathJax 3's ``typesetPromise`` (labels written with \( \) render as math).
WIDGET_MATH_JS = """\
// tlcourse: let @jupyter-widgets/html-manager 1.x typeset widget labels with MathJax 3.
document.addEventListener("DOMContentLoaded", function () {
  var mj = window.MathJax;
  if (mj && !mj.Hub) {
    mj.Hub = {Queue: function (job) {
      var element = job && job[2];
      if (element && window.MathJax.typesetPromise) window.MathJax.typesetPromise([element]);
    }};
  }
});
"""


# --------------------------------------------------------------------------- web assets
def _asset_dir(name: str) -> Path:
    spec = WEB_ASSETS[name]["package"]
    return data_dir() / "site-assets" / spec.lstrip("@").replace("/", "-")


def _npm_pack(spec: str, dest: Path) -> Path:
    """The package tarball of ``spec``, fetched by npm into ``dest``."""
    npm = shutil.which("npm")
    if npm is None:
        raise TLCourseError(
            f"The course site needs {spec} from the npm registry, and `npm` is not on PATH. "
            "Install Node.js's npm (Debian: `apt-get install npm`) and run `make setup` again.")
    cmd = [npm, "pack", spec, "--json", "--pack-destination", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=dest)
    tarballs = sorted(dest.glob("*.tgz"))
    if result.returncode != 0 or not tarballs:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise TLCourseError(
            f"Could not fetch {spec} with `npm pack {spec}` ({tail or 'no tarball'}). "
            "Check that npm reaches its registry (or your mirror), then run `make setup` again.")
    return tarballs[0]


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def web_assets(verbose: bool = True) -> dict[str, Path]:
    """MathJax and the widget manager, unpacked in ``data/site-assets/`` (fetched once).

    Returns each library's folder. Each is fetched with ``npm pack``, its tarball checked
    against :data:`WEB_ASSETS`, unpacked into a temporary folder and renamed into place, so a
    folder that exists is complete.
    """
    folders = {}
    for name, asset in WEB_ASSETS.items():
        folder = _asset_dir(name)
        folders[name] = folder
        if (folder / asset["entry"]).is_file():
            continue
        folder.parent.mkdir(parents=True, exist_ok=True)
        if verbose:
            print(f"  fetching {asset['package']} from the npm registry", flush=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=folder.parent) as tmp:
            tmp = Path(tmp)
            tarball = _npm_pack(asset["package"], tmp)
            actual = _integrity(tarball)
            if actual != asset["integrity"]:
                raise TLCourseError(
                    f"{tarball.name} from npm has checksum {actual}, expected {asset['integrity']} "
                    f"(tlcourse.course.site.WEB_ASSETS). The download is corrupt or not the "
                    f"release the course pins; run `make setup` again.")
            unpacked = tmp / "unpacked"
            keep = re.compile(asset["keep"])
            with tarfile.open(tarball) as tar:
                for member in tar.getmembers():
                    relative = member.name.split("/", 1)[-1]  # drop npm's "package/"
                    if not member.isfile() or ".." in relative.split("/") or not keep.fullmatch(relative):
                        continue
                    target = unpacked / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
            if not (unpacked / asset["entry"]).is_file():
                raise TLCourseError(f"{asset['package']} has no {asset['entry']}: "
                                    "update WEB_ASSETS in tlcourse/course/site.py.")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(unpacked, folder)
    return folders


# --------------------------------------------------------------------------- reading the build
def notebooks(build: Path) -> list[Path]:
    """The executed notebooks of a lecture build, in course order (``NN_name.ipynb``)."""
    return sorted(Path(build).glob("[0-9][0-9]_*.ipynb"))


def _plain(markdown: str) -> str:
    """One line of Markdown, with the line breaks of the source joined."""
    return " ".join(markdown.split())


def _sentences(paragraph: str) -> list[str]:
    """A paragraph's sentences: split after . ! ? before a capital, never inside a quotation."""
    out, start = [], 0
    for match in re.finditer(r"(?:(?<=[.!?])|(?<=[.!?]\"))\s+(?=[A-Z(])", paragraph):
        if paragraph.count('"', start, match.start()) % 2 == 0:
            out.append(paragraph[start:match.start()])
            start = match.end()
    return out + [paragraph[start:]]


def describe(path: Path) -> tuple[str, str]:
    """A notebook's title (its first ``#`` heading) and a one-line summary of what it teaches.

    The summary is ``metadata["tlcourse"]["summary"]`` when the notebook sets one; otherwise,
    from the first markdown cell after its title, the sentence that says what "this notebook"
    does, or else the first sentence of some length that does not end in a quotation.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    summary = (nb.metadata.get("tlcourse") or {}).get("summary", "")
    cells = [c for c in nb.cells if c.cell_type == "markdown"]
    text = cells[0].source if cells else ""
    title = ""
    match = re.search(r"^#\s+(.+)$", text, flags=re.M)
    if match:
        title = match.group(1).strip()
        text = text[match.end():]
    if not summary:
        paragraphs = [_plain(p) for p in re.split(r"\n\s*\n", text) if p.strip()]
        prose = [re.sub(r"\*\*|(?<!\w)[*_]|[*_](?!\w)", "", p) for p in paragraphs
                 if not re.match(r"^([>|#-]|\d+\.\s|\*[^*].*\*$|_.*_$)", p)]
        sentences = [s for p in prose for s in _sentences(p)]
        full = [s for s in sentences if len(s) >= 40 and s[-1] in ".!?"]
        this = [s for s in full if "this notebook" in s.lower()]
        summary = (this or full or sentences or [""])[0]
    return title or path.stem.replace("_", " "), summary


def _results(build: Path, stem: str) -> dict:
    path = Path(build) / "results" / f"{stem}.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TLCourseError(f"{path} is not valid JSON ({exc}): run that notebook again "
                            "(`make run`), or delete the file.") from None


# --------------------------------------------------------------------------- pages
UNITS = {"s": "s", "ms": "ms", "min": "min", "mib": "MiB", "gib": "GiB", "mb": "MB",
         "kb": "KB", "pct": "%", "percent": "%"}
WORDS = {"top1": "top-1", "top5": "top-5", "acc": "accuracy", "lr": "learning rate",
         "ci": "CI", "ci95": "95% CI", "params": "parameters", "n": "n", "vs": "vs",
         "auc": "AUC", "multadds": "mult-adds", "macs": "MACs", "flops": "FLOPs",
         "tflite": "TFLite", "imagenet": "ImageNet", "mobilenet": "MobileNet", "vgg16": "VGG16"}
SPECIAL = {"labels", "figures", "peak_memory_mib"}


def label(key: str) -> str:
    """A readable label for a results key: ``cached_s_per_epoch`` -> ``Cached (s per epoch)``."""
    words = key.replace("mult_adds", "multadds").split("_")
    unit_at = next((i for i, w in enumerate(words) if w.lower() in UNITS), None)
    unit = ""
    if unit_at is not None and unit_at > 0:
        unit = " ".join(UNITS.get(w.lower(), WORDS.get(w.lower(), w)) for w in words[unit_at:])
        words = words[:unit_at]
    text = " ".join(WORDS.get(w.lower(), w) for w in words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def value(v) -> str:
    """A number as a reader wants it: 3 significant digits, thousands separated."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        if len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return f"{value(v[0])} – {value(v[1])}"
        shown = ", ".join(value(x) for x in v[:8])
        return shown + (", …" if len(v) > 8 else "")
    if isinstance(v, dict):
        return "; ".join(f"{label(str(k))}: {value(x)}" for k, x in v.items())
    return str(v)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _figures(results: dict, build: Path, stage: Path, stem: str) -> list[str]:
    """Markdown for the figures a notebook listed under ``"figures"``, copied into the book."""
    out = []
    entries = results.get("figures") or []
    if isinstance(entries, (str, dict)):
        entries = [entries]
    for i, entry in enumerate(entries):
        path, caption = (entry, "") if isinstance(entry, str) else (entry.get("path", ""), entry.get("caption", ""))
        source = next((p for p in (build / path, build / "results" / path) if p.is_file()), None)
        if source is None:
            out.append(f"*Figure `{path}` was listed but is not in the build.*")
            continue
        target = stage / "figures" / f"{stem}-{i}{source.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        caption = caption or label(Path(path).stem)
        out.append(f":::{{figure}} figures/{target.name}\n:alt: {caption}\n\n{caption}\n:::")
    return out


def results_page(build: Path, parts: list[tuple[str, str, str]], stage: Path) -> str:
    """``results.md``: every notebook's headline numbers in one labelled table, then the
    tables and figures the notebooks recorded, then how the build went."""
    headline, details = [], []
    for stem, title, _ in parts:
        results = _results(build, stem)
        labels = results.get("labels") or {}
        link = f"[{title}]({stem}.ipynb)"
        tables = []
        for key, v in results.items():
            if key in SPECIAL:
                continue
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                tables.append((key, v))
            else:
                headline.append([link, labels.get(key, label(key)), value(v)])
                link = ""  # the part's name once, on its first row
        figures = _figures(results, build, stage, stem)
        if tables or figures:
            details += [f"### {title}", ""]
            for key, records in tables:
                columns = list(dict.fromkeys(k for r in records for k in r))
                details += [f"**{labels.get(key, label(key))}**", "",
                            _table([labels.get(c, label(c)) for c in columns],
                                   [[value(r.get(c, "")) for c in columns] for r in records]), ""]
            details += [f + "\n" for f in figures]
    lines = ["# Results", "", "What each part measured in this build "
             f"({_mode(build)} mode); each number is computed, with its context, in the part "
             "it links to.", ""]
    lines += ["## Headline numbers", ""]
    lines += [_table(["Part", "Measure", "Value"], headline) if headline
              else "*No notebook recorded numbers in this build.*", ""]
    if details:
        lines += ["## Tables and figures", ""] + details
    status, rows = _summary(build), []
    for stem, title, _ in parts:
        results, run = _results(build, stem), status.get(stem, {})
        seconds = run.get("seconds")
        rows.append([f"[{title}]({stem}.ipynb)",
                     {True: "ran", False: "**failed**"}.get(run.get("ok"), ""),
                     value(seconds) if seconds is not None else "",
                     value(results["peak_memory_mib"]) if "peak_memory_mib" in results else ""])
    lines += ["## The build", "",
              _table(["Part", "Status", "Time (s)", "Peak memory (MiB)"], rows), ""]
    return "\n".join(lines)


def _summary(build: Path) -> dict:
    """``<build>/summary.json`` (written by the lecture build), by notebook."""
    path = Path(build) / "summary.json"
    try:
        return {row["notebook"]: row for row in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _mode(build: Path) -> str:
    """"fast" or "full": the mode the build ran in (``summary.json``, else the folder's name)."""
    mode = next((row.get("mode") for row in _summary(build).values() if row.get("mode")), None)
    return mode or ("fast" if Path(build).name == "build-fast" else "full")


def title_page(parts: list[tuple[str, str, str]], build: Path) -> str:
    """``index.md``: the lecture's title and what each part teaches."""
    status = _summary(build)
    lines = [f"# {TITLE}", "", LECTURE, "",
             "Transfer learning reuses a network trained on a large data set for a new task "
             "that has only a few labelled examples. The parts, in order:", ""]
    for stem, title, summary in parts:
        failed = " *(did not finish in this build)*" if status.get(stem, {}).get("ok") is False else ""
        lines.append(f"- **[{title}]({stem}.ipynb)**{failed}  \n  {summary}")
    lines += ["", "The [results](results.md) page collects the numbers each part measured.", ""]
    if _mode(build) == "fast":
        lines += [":::{note}", "This site shows a **fast-mode** run (`TLCOURSE_FAST=1`: less "
                  "data, fewer epochs), made to check that everything runs. Its numbers are "
                  "less accurate than those of a full `make run`.", ":::", ""]
    lines += ["## Reading this site", "",
              "Each page is a notebook as the lecture build executed it: its numbers, figures "
              "and widgets are that run's outputs, and a widget shows the state it was saved "
              "in (moving it needs a running kernel: open the notebook in JupyterLab with "
              "`make lab`). The site needs no network: formulas, images, widgets and search "
              "work from the files in this folder.", ""]
    return "\n".join(lines)


def _config() -> str:
    """``_config.yml``: no execution, and every script served from ``_static/``."""
    config = {
        "title": TITLE,
        "author": "tlcourse",
        "copyright": "",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        # Jupyter's Markdown: $...$, $$...$$ also inside a paragraph, \begin{align} blocks
        "parse": {"myst_enable_extensions": ["amsmath", "colon_fence", "dollarmath", "linkify",
                                             "substitution", "tasklist"]},
        "html": {"home_page_in_navbar": True, "use_download_button": True},
        "launch_buttons": {"binderhub_url": "", "jupyterhub_url": "", "thebe": False,
                           "colab_url": ""},
        "sphinx": {"config": {
            # not "_static": Jupyter Book would add every script found there to every page
            "html_static_path": ["web"],
            "mathjax_path": f"{STATIC}/mathjax/{WEB_ASSETS['mathjax']['entry']}",
            "nb_ipywidgets_js": {
                f"{STATIC}/widget-math.js": {},
                f"{STATIC}/html-manager/{WEB_ASSETS['html-manager']['entry']}": {}},
            "myst_dmath_double_inline": True,
            "html_show_copyright": False,
            "html_last_updated_fmt": None,
        }},
    }
    return json.dumps(config, indent=2)  # JSON is YAML


def _toc(parts: list[tuple[str, str, str]]) -> str:
    chapters = "".join(f"  - file: {stem}\n" for stem, _, _ in parts)
    return f"format: jb-book\nroot: index\nchapters:\n{chapters}  - file: results\n"


def write_book(build: Path, stage: Path, assets: dict[str, Path]) -> list[tuple[str, str, str]]:
    """The book's source in ``stage``: notebooks copied as executed, generated pages, assets."""
    found = notebooks(build)
    if not found:
        raise TLCourseError(
            f"No executed notebooks (NN_name.ipynb) in {build}. Run the lecture build first "
            "(`make run`, or `python -m tlcourse.course.build`), then build the site.")
    parts = []
    for path in found:
        title, summary = describe(path)
        parts.append((path.stem, title, summary))
        shutil.copyfile(path, stage / path.name)
    (stage / "index.md").write_text(title_page(parts, build), encoding="utf-8")
    (stage / "results.md").write_text(results_page(build, parts, stage), encoding="utf-8")
    (stage / "_config.yml").write_text(_config(), encoding="utf-8")
    (stage / "_toc.yml").write_text(_toc(parts), encoding="utf-8")
    for name, folder in assets.items():
        shutil.copytree(folder, stage / "web" / STATIC / name)
    (stage / "web" / STATIC / "widget-math.js").write_text(WIDGET_MATH_JS, encoding="utf-8")
    return parts


def remote_references(site: Path) -> list[str]:
    """Every ``<script src>`` and ``<link href>`` in the site's pages that points off the machine."""
    pattern = re.compile(r"<(script|link)\b[^>]*?\b(src|href)=[\"']((?:https?:)?//[^\"']+)", re.I)
    found = []
    for page in sorted(Path(site).rglob("*.html")):
        for match in pattern.finditer(page.read_text(encoding="utf-8", errors="replace")):
            found.append(f"{page.relative_to(site)}: <{match.group(1)} {match.group(3)}>")
    return found


def build_site(build=None, verbose: bool = True) -> Path:
    """Build ``<build>/site/`` from the executed notebooks in ``build`` and return its folder.

    The notebooks are not executed again. The site is built in a temporary folder beside it
    and renamed into place, so ``site/`` is either the previous site or the new one, whole.
    """
    build = Path(build) if build is not None else build_dir()
    if not build.is_dir():
        raise TLCourseError(f"{build} is not a folder. Run the lecture build first (`make run`).")
    start = time.perf_counter()
    assets = web_assets(verbose=verbose)
    site = build / "site"
    stage = Path(tempfile.mkdtemp(prefix=".site-", dir=build))
    try:
        source, output = stage / "book", stage / "out"
        source.mkdir()
        parts = write_book(build, source, assets)
        cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
               "build", str(source), "--path-output", str(output), "--builder", "html"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        html = output / "_build" / "html"
        log = result.stdout + result.stderr
        if result.returncode != 0 or not (html / "index.html").is_file():
            tail = "\n".join(log.strip().splitlines()[-25:])
            raise TLCourseError(f"Jupyter Book could not build the site from {build}:\n{tail}")
        remote = remote_references(html)
        if remote:
            raise TLCourseError("The site would load files from the internet:\n  "
                                + "\n  ".join(remote[:10]))
        previous = stage / "previous"
        if site.exists():
            os.replace(site, previous)
        try:
            os.replace(html, site)
        except OSError:
            if previous.exists():
                os.replace(previous, site)  # keep the last good site
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if verbose:
        warnings = [line for line in log.splitlines() if "WARNING" in line]
        for line in warnings:
            print(f"  {line.strip()}")
        print(f"Course site: {len(parts)} notebooks, title and results pages in "
              f"{time.perf_counter() - start:.0f} s -> {site / 'index.html'}")
    return site


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        build_site(args[0] if args else None)
    except TLCourseError as exc:
        print(f"\nThe course site was not built: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
