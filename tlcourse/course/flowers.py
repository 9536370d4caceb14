"""The flowers, provisioned safely: the archive found, extracted, cleaned and split.

:func:`flowers_dir` finds the archive, in this order: ``TLCOURSE_FLOWERS`` (a path, or an
http(s)/file URL downloaded once); an archive placed in ``data/``; the extracted cache
``data/flower_photos`` (trusted only with its marker, written last); the canonical download.
It extracts with :func:`safe_extract`: every member checked first, into a temporary folder
renamed only when complete. :func:`make_splits` cuts seeded, stratified train/val/test folders
of clean images (:func:`clean_image_folder`'s rules) that ``keras.utils.image_dataset_from_directory``
reads as they are.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..lesson.config import atomic_write, data_dir, project_root
from ..lesson.data import SPLITS, Splits, split_name
from ..lesson.errors import TLCourseError
from . import fetch
from .fetch import manifest

ENV_VAR = "TLCOURSE_FLOWERS"
CACHE_NAME = "flower_photos"
MARKER_NAME = "flower_photos.source.json"
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_LITTER = {"thumbs.db", "desktop.ini", "__macosx"}
_SPLIT_VERSION = 2
FLOWERS_URL = manifest()["flowers"]["url"]
FLOWERS_SHA256 = manifest()["flowers"]["sha256"]
_WHAT_TO_DO = (f"Place flower_photos.tgz in data/ or set {ENV_VAR}=/path/to/flower_photos_mini.tgz "
               f"(from the project folder: {ENV_VAR}=../shared/data/flower_photos_mini.tgz).")


def _show(path) -> str:
    """A path relative to the project folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(project_root().resolve()))
    except ValueError:
        return str(Path(path).resolve())


def _is_litter(name: str) -> bool:
    return name.startswith(".") or name.lower() in _LITTER


@contextlib.contextmanager
def _locked(folder: Path):
    """Serialise provisioning in one data folder (two notebooks or runs at once)."""
    import fcntl

    with open(folder / ".tlcourse.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_leftovers(root: Path) -> None:
    """Remove temporary folders of runs that were killed (we hold the lock)."""
    for leftover in [*root.glob(f".{CACHE_NAME}.*"), *root.glob(f".{MARKER_NAME}.*"),
                     *root.glob("splits/.*")]:
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()


# ------------------------------------------------------------------ safe extraction

def _check_member(member: tarfile.TarInfo, root: Path, archive: Path) -> None:
    """Refuse any member that could write outside ``root`` or is not a plain file or folder."""
    name, why = member.name, None
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or PurePosixPath(name).is_absolute():
        why = "an absolute path"
    elif ".." in re.split(r"[\\/]+", name):
        why = "a path that climbs out of the target folder with '..'"
    elif member.issym() or member.islnk():
        why = f"a {'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}"
    elif not (member.isfile() or member.isdir()):
        why = "a device, pipe or other special file"
    elif root not in (root / name).resolve().parents and (root / name).resolve() != root:
        why = "a path that resolves outside the target folder"
    if why:
        raise TLCourseError(
            f"{archive} contains an unsafe member {name!r} ({why}); nothing was extracted. A "
            "flowers archive holds only plain folders and photos: it is corrupt or was crafted. "
            f"Use a fresh copy of flower_photos.tgz ({FLOWERS_URL}) or the course's "
            "flower_photos_mini.tgz.")


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    tar.extract(member, root, filter="data")  # the stdlib's own guard, after ours


def _unreadable(archive, exc) -> TLCourseError:
    return TLCourseError(f"{archive} is not a readable .tgz archive ({exc}); re-download it or "
                         f"point {ENV_VAR} at a good copy.")


def _extract_to_temp(archive: Path, parent: Path, stem: str) -> Path:
    """Stream ``archive`` into a fresh hidden folder in ``parent``; on any failure remove it."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".extract", dir=parent)).resolve()
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                _check_member(member, tmp, archive)
                _extract_member(tar, member, tmp)
    except TLCourseError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _unreadable(archive, exc) from None
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if "gzip" in str(exc).lower() or type(exc).__name__ == "BadGzipFile":
            raise _unreadable(archive, exc) from None
        raise TLCourseError(f"Could not write the photos of {archive} into {_show(parent)} "
                            f"({exc}). Free some disk space or make data/ writable.") from None
    except BaseException:  # Ctrl-C too: leave nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def safe_extract(archive, dest) -> Path:
    """Extract a tar archive into the new folder ``dest``, safely and atomically: absolute paths,
    ``..``, links and special files are refused naming the member, and ``dest`` either holds
    the whole archive or does not exist."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise TLCourseError(f"The archive {archive} does not exist (or is not a file).")
    if dest.exists():
        raise TLCourseError(f"{dest} already exists: remove it first or extract somewhere else.")
    os.rename(_extract_to_temp(archive, dest.parent, dest.name), dest)
    return dest


# ------------------------------------------------------------------ the flowers cache

def _class_counts(folder: Path) -> dict[str, int]:
    """Image files per class folder (non-hidden sub-folders holding images)."""
    counts = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name) if folder.is_dir() else []:
        if entry.is_dir() and not _is_litter(entry.name):
            n = sum(1 for f in os.scandir(entry.path) if f.is_file() and not _is_litter(f.name)
                    and f.name.lower().endswith(IMAGE_EXTENSIONS))
            if n:
                counts[entry.name] = n
    return counts


def _check_layout(extracted: Path, archive: Path) -> dict[str, int]:
    counts = _class_counts(extracted / CACHE_NAME)
    if len(counts) >= 2:
        return counts
    if (extracted / CACHE_NAME).is_dir():
        found = f"flower_photos/ with {len(counts)} class folder(s) holding photos"
    else:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in extracted.iterdir())
        found = (", ".join(names[:6]) + (" ..." if len(names) > 6 else "")) or "nothing"
    raise TLCourseError(
        f"{archive} does not have the flowers layout: expected a top folder flower_photos/ with "
        "one folder of photos per class (flower_photos/daisy/*.jpg, ..., at least 2 classes); "
        f"found {found}. Use flower_photos.tgz ({FLOWERS_URL}) or the course's "
        "flower_photos_mini.tgz, or repack your photos in that layout.")


def _trusted_marker(root: Path) -> tuple[dict | None, str]:
    """(marker, "") when ``data/flower_photos`` is complete, else (None, why not)."""
    if not (root / CACHE_NAME).is_dir():
        return None, "missing"
    try:
        marker = json.loads((root / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None, ("present but not trusted: no marker, so an extraction was interrupted or "
                      "tlcourse did not make it")
    if _class_counts(root / CACHE_NAME) != marker.get("classes"):
        return None, "present but not trusted: its photos changed since the extraction"
    return marker, ""


def _announce(root: Path, marker: dict) -> None:
    known = {e["sha256"]: e["what"] for e in (manifest()["flowers"], manifest()["flowers_mini"])}
    origin = marker["archive"] + (f", {known[marker['sha256']]}" if marker["sha256"] in known else "")
    print(f"Flowers data: {_show(root / CACHE_NAME)}, {sum(marker['classes'].values()):,} photos of "
          f"{len(marker['classes'])} classes ({', '.join(marker['classes'])}) from {origin}.")


def _use_archive(archive: Path, root: Path, verbose: bool) -> Path:
    """Make ``data/flower_photos`` hold ``archive``'s photos, extracting only when needed."""
    if not archive.is_file():
        raise TLCourseError(f"The flowers archive {archive} does not exist (or is not a file).")
    sha = fetch.file_hash(archive)
    marker, _ = _trusted_marker(root)
    if marker is None or marker["sha256"] != sha:
        if verbose:
            print(f"Extracting {_show(archive)} into {_show(root / CACHE_NAME)} ...")
        tmp = _extract_to_temp(archive, root, CACHE_NAME)
        try:
            counts = _check_layout(tmp, archive)
            (root / MARKER_NAME).unlink(missing_ok=True)  # first out, last back in
            if (root / CACHE_NAME).exists():
                os.replace(root / CACHE_NAME, tmp / "old")
            os.rename(tmp / CACHE_NAME, root / CACHE_NAME)
            marker = {"sha256": sha, "archive": archive.name, "classes": counts,
                      "photos": sum(counts.values())}
            with atomic_write(root / MARKER_NAME) as part:
                part.write_text(json.dumps(marker, indent=2, sort_keys=True))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        _announce(root, marker)
    return root / CACHE_NAME


def _archive_from_env(value: str, root: Path, verbose: bool) -> Path:
    """The archive ``TLCOURSE_FLOWERS`` names: a path, or a URL downloaded into data/ once."""
    if re.match(r"^(https?|file)://", value, re.IGNORECASE):
        dest = root / (Path(urllib.parse.urlparse(value).path).name or "flower_photos_download.tgz")
        if dest.is_file():
            return dest
        try:
            return fetch.download(value, dest, sha256=FLOWERS_SHA256 if value == FLOWERS_URL else None,
                                  progress=verbose)
        except TLCourseError as exc:
            raise TLCourseError(f"{ENV_VAR}={value}: {exc}") from None
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, project_root() / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            raise TLCourseError(f"{ENV_VAR}={value} is a folder; it must name the archive itself, "
                                f"e.g. {ENV_VAR}=../shared/data/flower_photos_mini.tgz.")
    raise TLCourseError(
        f"{ENV_VAR}={value} does not exist (looked at {' and '.join(map(str, dict.fromkeys(candidates)))}). "
        "Point it at flower_photos.tgz or the course's flower_photos_mini.tgz (a path or an "
        "http(s)/file URL), or unset it to use data/ or the download.")


def flowers_dir(verbose: bool = True) -> Path:
    """The extracted ``flower_photos`` folder, provisioned from the first source that has it
    (see the module docstring); a TLCourseError lists every source tried when none does."""
    root = data_dir()
    with _locked(root):
        _clean_leftovers(root)
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            return _use_archive(_archive_from_env(env, root, verbose), root, verbose)
        archives = sorted({p for pat in ("flower_photos*.tgz", "flower_photos*.tar.gz")
                           for p in root.glob(pat) if p.is_file()},
                          key=lambda p: (p.name != "flower_photos.tgz", p.name))
        if archives:
            if len(archives) > 1 and verbose:
                print(f"Several flowers archives in {_show(root)}: "
                      f"{', '.join(a.name for a in archives)}; using {archives[0].name} "
                      f"(set {ENV_VAR} to choose another).")
            return _use_archive(archives[0], root, verbose)
        marker, why = _trusted_marker(root)
        if marker is not None:
            if verbose:
                _announce(root, marker)
            return root / CACHE_NAME
        tried = [f"{ENV_VAR} (unset)", f"{_show(root)}/flower_photos*.tgz (none)",
                 f"cache {_show(root / CACHE_NAME)} ({why})"]
        try:
            archive = fetch.download(FLOWERS_URL, root / "flower_photos.tgz",
                                     sha256=FLOWERS_SHA256, progress=verbose)
        except TLCourseError as exc:
            tried.append(f"download {FLOWERS_URL} ({exc})")
            raise TLCourseError("No flowers data found. Tried: " + "; ".join(tried) + ". "
                                + _WHAT_TO_DO) from None
        return _use_archive(archive, root, verbose)


# ------------------------------------------------------------------ clean images

_TF_NATIVE = {("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "L")}


def _inspect(path: Path):
    """("ok", None) for a JPEG/PNG in RGB or grey; ("converted", RGB image) for any other
    readable image (alpha composited on white, 16-bit scaled); ("bad", reason) otherwise."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()  # a full decode catches truncation
            if (im.format, im.mode) in _TF_NATIVE:
                return "ok", None
            if im.mode.startswith("I;16"):
                im = Image.fromarray((np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8), "L")
            elif im.mode in ("I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                span = arr.max() - arr.min()
                im = Image.fromarray(((arr - arr.min()) * (255 / span if span else 0)).round()
                                     .astype(np.uint8), "L")
            if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                white.alpha_composite(rgba)
                return "converted", white.convert("RGB")
            return "converted", im.convert("RGB")
    except UnidentifiedImageError:
        return "bad", "not an image"
    except Image.DecompressionBombError as exc:
        return "bad", f"too large ({exc})"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        return "bad", f"truncated or corrupt ({exc})"


@dataclass
class CleanReport:
    """What :func:`clean_image_folder` did: usable images per class, and what it left out."""

    counts: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)    # (path, reason)
    converted: list = field(default_factory=list)  # original paths written as RGB PNG
    hidden: int = 0                                # hidden files and folders ignored


def _populate(dest: Path, sources: dict[str, list[Path]], report: CleanReport) -> None:
    """Fill ``dest/<folder>/`` with clean images of ``sources[folder]``: links to good files,
    RGB PNG copies of odd ones, nothing for unusable ones (recorded in ``report``)."""
    for folder, paths in sources.items():
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for src in paths:
            kind, detail = _inspect(src)
            if kind == "bad":
                report.skipped.append((src, detail))
            elif kind == "ok":
                try:
                    os.symlink(os.path.relpath(src.resolve(), dest / folder), dest / folder / src.name)
                except OSError:  # no symbolic links here: copy
                    shutil.copy2(src, dest / folder / src.name)
            else:
                detail.save(dest / folder / f"{src.stem}.png", format="PNG")
                report.converted.append(src)


def _warn_skipped(directory, report: CleanReport, total: int) -> None:
    if report.skipped:
        shown = "; ".join(f"{Path(p).relative_to(directory)} ({why})" for p, why in report.skipped[:5])
        more = f" and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""
        warnings.warn(f"Skipped {len(report.skipped)} of {total} files in {directory} that are not "
                      f"usable images: {shown}{more}. They are left out of the data set; delete or "
                      "replace them to silence this warning.", UserWarning, stacklevel=3)


def clean_image_folder(directory, dest) -> CleanReport:
    """Copy a class-per-folder image set into the new folder ``dest`` in a form
    ``image_dataset_from_directory`` reads: JPEG/PNG in RGB or grey linked as they are; other
    readable images (CMYK, palette, alpha, 16-bit, GIF, WebP, TIFF...) converted to RGB PNG;
    non-images and broken files left out with one warning naming them; hidden files ignored.
    A missing folder, no class folders, or a class without usable images is a TLCourseError."""
    directory, dest = Path(directory), Path(dest)
    if not directory.is_dir():
        raise TLCourseError(f"The image folder {directory} does not exist (or is a file): give "
                            "the folder that holds one sub-folder of images per class.")
    report, sources, loose = CleanReport(), {}, []
    for entry in sorted(directory.iterdir()):
        if _is_litter(entry.name):
            report.hidden += 1
        elif entry.is_dir():
            files = []
            for folder, subdirs, names in os.walk(entry):
                report.hidden += sum(map(_is_litter, subdirs + names))
                subdirs[:] = sorted(d for d in subdirs if not _is_litter(d))
                files += [Path(folder) / n for n in sorted(names) if not _is_litter(n)]
            sources[entry.name] = files
        else:
            loose.append(entry)
    if not sources:
        found = f"{len(loose)} file(s) directly in it" if loose else "nothing"
        raise TLCourseError(f"{directory} has no class folders (found {found}). Put each class's "
                            f"images in its own sub-folder, e.g. {directory / 'cats'}/*.jpg.")
    _populate(dest, sources, report)
    _warn_skipped(directory, report, sum(map(len, sources.values())))
    report.counts = {c: sum(1 for _ in (dest / c).iterdir()) for c in sources}
    empty = [c for c, n in report.counts.items() if n == 0]
    if empty:
        bad = {c: sum(Path(p).relative_to(directory).parts[0] == c for p, _ in report.skipped) for c in empty}
        raise TLCourseError("No usable images in class folder(s) " + ", ".join(
            f"{directory / c} ({bad[c]} unusable file(s))" if bad[c] else f"{directory / c} (empty)"
            for c in empty) + ". Add JPEG or PNG images, or delete the folders of unwanted classes.")
    return report


# ------------------------------------------------------------------ splits

def _split_counts(n: int) -> tuple[int, int, int]:
    """Photos of one class for train / val / test (80/10/10, rounded half up, at least one)."""
    n_val = n_test = max(1, math.floor(n * 0.1 + 0.5))
    return n - n_val - n_test, n_val, n_test


def _choose(source: Path, seed: int, per_class: int, grow_test: bool) -> dict:
    """split -> class -> sorted file names: per class, the names shuffled by a RandomState
    seeded with (seed, crc32(class)); the first ``per_class`` cut 80/10/10; with ``grow_test``
    every photo beyond them joins the test split."""
    chosen = {s: {} for s in SPLITS}
    for name in _class_counts(source):
        files = sorted(f.name for f in os.scandir(source / name) if f.is_file()
                       and not _is_litter(f.name) and f.name.lower().endswith(IMAGE_EXTENSIONS))
        rng = np.random.RandomState([seed, zlib.crc32(name.encode())])
        order = [files[i] for i in rng.permutation(len(files))]
        if len(order[:per_class]) < 3:
            raise TLCourseError(f"Class {name} of {_show(source)} has only {len(order)} photo(s): a "
                                "train/val/test split needs at least 3. Add photos or remove the class.")
        n_train, n_val, _ = _split_counts(len(order[:per_class]))
        rest = order[per_class:] if grow_test else []
        for split, part in zip(SPLITS, (order[:n_train], order[n_train:n_train + n_val],
                                        order[n_train + n_val:per_class] + rest)):
            chosen[split][name] = sorted(part)
    return chosen


def make_splits(seed: int = 42, per_class: int = 200, grow_test: bool = False,
                verbose: bool = False) -> Splits:
    """Provision ``data/splits/seed<seed>-n<per_class>/{train,val,test}/<class>/``: the
    flowers split (:func:`_choose`) into clean folders, built in a temporary folder, renamed
    when complete, and reused while the archive and parameters are the same."""
    if not isinstance(per_class, int) or per_class < 3 or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 and per_class an integer >= 3, "
                         f"not {seed!r}, {per_class!r}.")
    source = flowers_dir(verbose=verbose)
    root = data_dir()
    dest = root / "splits" / split_name(seed, per_class)
    with _locked(root):
        marker, why = _trusted_marker(root)
        if marker is None:
            raise TLCourseError(f"The flowers cache {_show(source)} is {why}; run again.")
        expected = {"source_sha256": marker["sha256"], "seed": seed, "per_class": per_class,
                    "grow_test": grow_test, "version": _SPLIT_VERSION}
        try:
            info = json.loads((dest / "split.json").read_text())
            if {k: info.get(k) for k in expected} == expected:
                return _as_splits(dest, info)
        except (OSError, ValueError):
            pass
        chosen = _choose(source, seed, per_class, grow_test)
        (root / "splits").mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".build", dir=root / "splits"))
        try:
            os.chmod(tmp, 0o755)
            report = CleanReport()
            for split in SPLITS:
                _populate(tmp / split, {c: [source / c / f for f in names]
                                        for c, names in chosen[split].items()}, report)
            _warn_skipped(source, report, sum(len(n) for s in chosen.values() for n in s.values()))
            files = {s: {c: sorted(p.name for p in (tmp / s / c).iterdir()) for c in chosen[s]}
                     for s in SPLITS}
            info = {**expected, "files": files}
            (tmp / "split.json").write_text(json.dumps(info, indent=1, sort_keys=True))
            if dest.exists():
                shutil.rmtree(dest)
            os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _as_splits(dest, info)


def _as_splits(root: Path, info: dict) -> Splits:
    counts = {s: {c: len(n) for c, n in info["files"][s].items()} for s in SPLITS}
    return Splits(root=root, class_names=sorted(info["files"]["train"]), counts=counts)
