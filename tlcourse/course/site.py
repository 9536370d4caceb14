"""The course site.

A build's executed notebooks as a Jupyter Book that reads offline, with a title page and a results
page; MathJax and the widget manager are served from ``data/site-assets/``.

python -m tlcourse.course.site [BUILD_FOLDER]
"""

import base64
import hashlib
import json
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
from .fetch import manifest

TITLE = "Transfer learning with MobileNet"
LECTURE = (
    "After the lecture *Transfer Learning* by Marios Mattheakis (CS109B Data Science 2, "
    "Advanced Section 1)."
)
STATIC = "tlcourse-web"
SITE_ASSETS = ("mathjax", "html-manager")  # the others (manifest.json) serve the slides
# html-manager 1.x typesets widget labels through MathJax 2's Hub.Queue, which MathJax 3 lacks.
WIDGET_MATH_JS = """document.addEventListener("DOMContentLoaded", function () {
  var mj = window.MathJax;
  if (mj && !mj.Hub) mj.Hub = {Queue: function (job) {
    if (job && job[2] && mj.typesetPromise) mj.typesetPromise([job[2]]); }};
});
"""
WORDS = {
    "top1": "top-1",
    "top5": "top-5",
    "s": "(s)",
    "mib": "(MiB)",
    "ci": "CI",
    "vgg16": "VGG16",
    "imagenet": "ImageNet",
    "mobilenet": "MobileNet",
    "lr": "learning rate",
    "tflite": "TFLite",
}


def _npm_pack(spec: str, dest: Path) -> Path:
    """The package tarball of ``spec``, fetched by ``npm pack`` into ``dest``."""
    if shutil.which("npm") is None:
        raise TLCourseError(
            f"The course site needs {spec} from the npm registry and `npm` is not on "
            "PATH: install Node.js's npm (Debian: apt-get install npm), then run "
            "`make setup` again."
        )
    result = subprocess.run(
        ["npm", "pack", spec, "--pack-destination", str(dest)],
        capture_output=True,
        text=True,
        cwd=dest,
        check=False,
    )
    tarballs = sorted(dest.glob("*.tgz"))
    if result.returncode or not tarballs:
        raise TLCourseError(
            f"Could not fetch {spec} with `npm pack` ({result.stderr.strip()[-300:]}). "
            "Check that npm reaches its registry, then run `make setup` again."
        )
    return tarballs[0]


def web_assets(verbose: bool = True) -> dict[str, Path]:
    """The site's web libraries in ``data/site-assets/``: each fetched once, checked, renamed."""
    folders = {}
    for name, asset in manifest()["site_assets"].items():
        folder = folders[name] = data_dir() / "site-assets" / name
        if (folder / asset["entry"]).is_file():
            continue
        folder.parent.mkdir(parents=True, exist_ok=True)
        if verbose:
            print(f"  fetching {asset['package']} from the npm registry", flush=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=folder.parent) as tmp:
            tarball = _npm_pack(asset["package"], Path(tmp))
            actual = (
                "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
            )
            if actual != asset["integrity"]:
                raise TLCourseError(
                    f"{tarball.name} from npm has checksum {actual}, expected "
                    f"{asset['integrity']}: corrupt, or not the release the course pins "
                    "(manifest.json). Run `make setup` again."
                )

            with tarfile.open(
                tarball
            ) as tar:  # the files the site serves, npm's "package/" dropped
                members = [
                    m.replace(name=m.name.split("/", 1)[-1], deep=False) for m in tar.getmembers()
                ]
                tar.extractall(
                    Path(tmp) / "unpacked",
                    filter="data",
                    members=[
                        m for m in members if m.isfile() and re.fullmatch(asset["keep"], m.name)
                    ],
                )
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(Path(tmp) / "unpacked", folder)
    return folders


def describe(path: Path) -> tuple[str, str]:
    """The notebook's title (its first ``#`` heading) and summary (metadata, or first sentence)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    text = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = re.search(r"^#\s+(.+)$", text, flags=re.M)
    prose = [
        " ".join(p.split())
        for p in re.split(r"\n\s*\n", text)
        if p.strip() and not re.match(r"^\s*[#>*_|-]", p)
    ]
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z])", prose[0])[0] if prose else ""
    summary = (nb.metadata.get("tlcourse") or {}).get("summary") or first
    return title[1].strip() if title else path.stem, summary


def label(key: str) -> str:
    """A readable label for ``key``: ``cached_s_per_epoch`` -> ``Cached (s) per epoch``."""
    text = " ".join(WORDS.get(w, w) for w in key.split("_"))
    return text[:1].upper() + text[1:]


def value(v) -> str:
    """``v`` written out: numbers to 3 significant digits, thousands separated; lists and dicts."""
    if isinstance(v, dict):
        return "; ".join(f"{k}: {value(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(map(value, v))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _table(rows: list[dict], labels: dict) -> str:
    """``rows`` as an HTML table, its columns named by ``labels`` or :func:`label`."""
    import pandas as pd

    table = pd.DataFrame(rows).fillna("").map(value)
    return table.rename(columns=lambda c: labels.get(c, label(c))).to_html(index=False, border=0)


def _results(build: Path, stem: str) -> dict:
    """The numbers the notebook ``stem`` recorded in ``build/results/`` (empty if none)."""
    path = build / "results" / f"{stem}.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError as exc:
        raise TLCourseError(f"{path} is not valid JSON ({exc}): run that notebook again.") from None


def deck_link(build: Path, stem: str) -> str:
    """`` (<a>slides</a>)`` to the part's deck in ``<build>/slides/`` (beside the site), if made."""
    if not (build / "slides" / f"{stem}.slides.html").is_file():
        return ""
    return f' (<a href="../slides/{stem}.slides.html">slides</a>)'


def write_book(build: Path, book: Path, assets: dict) -> list[tuple[str, str, str]]:
    """Write the book's source for ``build`` into ``book``: pages, config, ``assets``.

    Returns the parts as ``(stem, title, summary)``.
    """
    found = sorted(build.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise TLCourseError(
            f"No executed notebooks (NN_name.ipynb) in {build}: run the lecture build first "
            "(`make run`), then build the site."
        )
    summary = (
        json.loads((build / "summary.json").read_text())
        if (build / "summary.json").is_file()
        else []
    )
    runs = {row["notebook"]: row for row in summary}
    fast = any(row.get("mode") == "fast" for row in summary) or build.name == "build-fast"
    parts = [(path.stem, *describe(path)) for path in found]
    results_md = [
        "# Results",
        "",
        f"What each part measured in this {'fast' if fast else 'full'}-mode "
        "build; each number is computed, in context, in the part it links to.",
        "",
    ]
    for path, (stem, title, _) in zip(found, parts):
        shutil.copyfile(path, book / path.name)
        results = _results(build, stem)
        labels = results.pop("labels", {})
        figures = results.pop("figures", [])
        if not results and not figures:
            continue
        tables = {
            k: v for k, v in results.items() if isinstance(v, list) and v and isinstance(v[0], dict)
        }
        scalars = [
            {"measure": labels.get(k, label(k)), "value": v}
            for k, v in results.items()
            if k != "peak_memory_mib" and k not in tables
        ]
        results_md += [f"## [{title}]({stem}.ipynb)", "", _table(scalars, labels), ""]
        for key, rows in tables.items():
            results_md += [f"**{labels.get(key, label(key))}**", "", _table(rows, labels), ""]
        for i, fig in enumerate({"path": f} if isinstance(f, str) else f for f in figures):
            if (build / fig["path"]).is_file():
                target = f"figures/{stem}-{i}{Path(fig['path']).suffix}"
                (book / "figures").mkdir(exist_ok=True)
                shutil.copyfile(build / fig["path"], book / target)
                results_md += [f":::{{figure}} {target}\n\n{fig.get('caption', '')}\n:::", ""]
    rows = [
        {
            "part": t,
            "status": {True: "ran", False: "FAILED"}.get(runs.get(s, {}).get("ok"), ""),
            "seconds": runs.get(s, {}).get("seconds", ""),
            "peak memory (MiB)": _results(build, s).get("peak_memory_mib", ""),
        }
        for s, t, _ in parts
    ]
    results_md += ["## The build", "", _table(rows, {}), ""]
    index = [
        f"# {TITLE}",
        "",
        LECTURE,
        "",
        "Transfer learning reuses a network trained on a large data set "
        "for a new task with few labelled examples. The parts, in order:",
        "",
        *(f"- **[{t}]({s}.ipynb)**{deck_link(build, s)}  \n  {line}" for s, t, line in parts),
        "",
        "The [results](results.md) page collects what each part measured. Each page is a "
        "notebook as the lecture build executed it; a widget shows its saved state (moving it "
        "needs a running kernel: `make lab`). Formulas, images, widgets and search work with no "
        "network.",
        "",
    ]
    if fast:
        index += [
            ":::{note}",
            "A **fast-mode** build (`TLCOURSE_FAST=1`: less data, fewer epochs): its "
            "numbers are less accurate than a full `make run`'s.",
            ":::",
            "",
        ]
    (book / "index.md").write_text("\n".join(index), encoding="utf-8")
    (book / "results.md").write_text("\n".join(results_md), encoding="utf-8")
    entries = {name: manifest()["site_assets"][name]["entry"] for name in assets}
    config = {
        "title": TITLE,
        "author": "tlcourse",
        "copyright": "",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        "launch_buttons": {"thebe": False},
        "parse": {"myst_enable_extensions": ["amsmath", "colon_fence", "dollarmath"]},
        "sphinx": {
            "config": {
                "html_static_path": ["web"],  # not _static: its scripts would go on every page
                "mathjax_path": f"{STATIC}/mathjax/{entries['mathjax']}",
                "nb_ipywidgets_js": {
                    f"{STATIC}/widget-math.js": {},
                    f"{STATIC}/html-manager/{entries['html-manager']}": {},
                },
                "myst_dmath_double_inline": True,
                "html_show_copyright": False,
            }
        },
    }
    (book / "_config.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: index\nchapters:\n"
        + "".join(f"  - file: {s}\n" for s, _, _ in parts)
        + "  - file: results\n"
    )
    for name, folder in assets.items():
        shutil.copytree(folder, book / "web" / STATIC / name)
    (book / "web" / STATIC / "widget-math.js").write_text(WIDGET_MATH_JS)
    return parts


def remote_references(site: Path) -> list[str]:
    """Every script, stylesheet, image, frame or module import in ``site`` that points elsewhere."""
    tags = re.compile(
        r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)=[\"']((?:https?:)?//[^\"']+)", re.I
    )
    imports = re.compile(r"\bimport\b[^;'\"]*?\bfrom\s+[\"']((?:https?:)?//[^\"']+)")
    found = []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        for pattern in (tags, imports):
            found += [f"{page.relative_to(site)}: {m[1]}" for m in pattern.finditer(text)]
    return found


def build_site(build=None, verbose: bool = True) -> Path:
    """Build ``<build>/site/`` (default: this mode's build) beside the old site, then swap it in."""
    build = Path(build) if build is not None else build_dir()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".site-", dir=build) as stage:
        book, html = Path(stage) / "book", Path(stage) / "out" / "_build" / "html"
        book.mkdir()
        assets = web_assets(verbose=verbose)
        parts = write_book(build, book, {name: assets[name] for name in SITE_ASSETS})
        jupyter_book = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]
        result = subprocess.run(
            [*jupyter_book, "build", str(book), "--path-output", str(Path(stage) / "out")],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode or not (html / "index.html").is_file():
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise TLCourseError(f"Jupyter Book could not build the site from {build}:\n{tail}")
        remote = remote_references(html)
        if remote:
            raise TLCourseError(
                "The site would load files from the internet:\n  " + "\n  ".join(remote[:10])
            )
        if (build / "site").exists():
            os.replace(build / "site", Path(stage) / "previous")
        os.replace(html, build / "site")
    if verbose:
        print(
            f"Course site: {len(parts)} notebooks in {time.perf_counter() - start:.0f} s -> "
            f"{build / 'site' / 'index.html'}"
        )
    return build / "site"


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        build_site(args[0] if args else None)
    except TLCourseError as exc:
        print(f"\nThe course site was not built: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
