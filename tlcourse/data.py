"""The flowers data set, safely: provisioning, splits, loading, augmentation.

The course's target data set is TensorFlow's flower photos (daisy, dandelion,
roses, sunflowers, tulips). This module

* finds or fetches the archive (:func:`flowers_dir`), in this order:
  the archive named by ``TLCOURSE_FLOWERS`` (a path or an http(s)/file URL);
  an archive placed in ``data/`` (``data/flower_photos*.tgz``); the
  already-extracted cache ``data/flower_photos``; the canonical download;
* extracts it safely and atomically (:func:`safe_extract`): no member may
  escape the target folder, and an interrupted extraction leaves nothing that
  a later run would trust;
* splits the photos into train / validation / test folders, deterministic and
  stratified by class (:func:`flowers_splits`);
* loads any class-per-folder image set, the flowers or a student's own photos,
  as the equivalent of ``keras.utils.image_dataset_from_directory``, with bad
  files skipped or converted before they can reach training
  (:func:`scan_image_folder`, :func:`image_dataset`);
* gives the course's augmentation as Keras preprocessing layers
  (:func:`augmentation`).

Every user-facing failure is a :class:`~tlcourse.fetch.TLCourseError` with one
plain message: what was tried, and what to do.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import stat
import struct
import sys
import tarfile
import tempfile
import urllib.parse
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from . import fetch
from .config import data_dir, pick, project_root
from .fetch import TLCourseError

__all__ = [
    "FLOWERS_URL", "FLOWERS_SHA256", "KNOWN_ARCHIVES", "FLOWER_CLASSES",
    "FlowerSplits", "FolderScan", "flowers_dir", "safe_extract", "flowers_splits",
    "scan_image_folder", "image_dataset", "augmentation",
]

ENV_VAR = "TLCOURSE_FLOWERS"
CACHE_NAME = "flower_photos"            # data/flower_photos/<class>/*.jpg
MARKER_NAME = "flower_photos.source.json"  # written last: the cache is trusted only with it
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")

# The archives the course knows: read from data/manifest.json, the one place their
# hashes live (data/README.md documents them).
def _known_archives() -> dict:
    from .provision import manifest

    fields = ("sha256", "photos", "url", "where", "what")
    return {entry["file"]: {k: entry[k] for k in fields if k in entry}
            for entry in (manifest()["flowers"], manifest()["flowers_mini"])}


KNOWN_ARCHIVES = _known_archives()
FLOWERS_URL = KNOWN_ARCHIVES["flower_photos.tgz"]["url"]
FLOWERS_SHA256 = KNOWN_ARCHIVES["flower_photos.tgz"]["sha256"]

# Extensions Keras's image_dataset_from_directory accepts; used to pick the
# photos of the flowers archive. scan_image_folder looks at every file instead.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# Names that are never data: hidden files (.DS_Store, ._x), OS litter.
_LITTER = {"thumbs.db", "desktop.ini", "__macosx"}
SPLITS = ("train", "val", "test")
_SPLIT_VERSION = 1
_CONVERT_VERSION = 1

_WHAT_TO_DO = (
    f"Place flower_photos.tgz in data/ or set {ENV_VAR}=/path/to/flower_photos_mini.tgz "
    f"(from the project folder: {ENV_VAR}=../shared/data/flower_photos_mini.tgz)."
)


# --------------------------------------------------------------------------- helpers

def _show(path) -> str:
    """A path as a reader wants it: relative to the project folder when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(project_root().resolve()))
    except ValueError:
        return str(path.resolve())


def _note(message: str) -> None:
    """Progress that varies between runs (extracting, reusing) goes to stderr."""
    print(message, file=sys.stderr, flush=True)


def _is_litter(name: str) -> bool:
    return name.startswith(".") or name.lower() in _LITTER


def _is_image_name(name: str) -> bool:
    return not _is_litter(name) and name.lower().endswith(IMAGE_EXTENSIONS)


@contextlib.contextmanager
def _locked(folder: Path):
    """Serialise provisioning in one data folder (two notebooks at once)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the atomic renames still hold
        yield
        return
    try:
        handle = open(folder / ".tlcourse.lock", "a")
    except OSError:  # a read-only data folder: nothing will be written there anyway
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _clean_leftovers(root: Path) -> None:
    """Remove temporary folders of runs that were killed (we hold the lock)."""
    for pattern in (f".{CACHE_NAME}.*.extract", f".{CACHE_NAME}.*.old", f".{MARKER_NAME}.*.part"):
        for leftover in root.glob(pattern):
            _remove(leftover)
    splits = root / "splits"
    if splits.is_dir():
        for pattern in (".*.build", ".*.old"):
            for leftover in splits.glob(pattern):
                _remove(leftover)


_SHA_MEMO: dict[tuple, str] = {}


def _archive_sha(path: Path) -> str:
    """SHA-256 of an archive, remembered per (path, size, mtime) within a session."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = fetch.sha256_file(path)
    return _SHA_MEMO[key]


def _known_name(sha: str) -> str | None:
    for name, info in KNOWN_ARCHIVES.items():
        if info["sha256"] == sha:
            return name
    return None


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = fetch.temp_path_beside(path)
    try:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- safe extraction

_FILTER_ERROR = getattr(tarfile, "FilterError", tarfile.TarError)  # Python >= 3.11.4/3.12


def _unreadable(archive: Path, exc) -> TLCourseError:
    return TLCourseError(
        f"{archive} is not a readable .tgz archive ({exc}); re-download it or point "
        f"{ENV_VAR} at a good copy."
    )


def _check_member(member: tarfile.TarInfo, root: Path, archive: Path) -> None:
    """Refuse any member that could write outside ``root`` or is not a plain file/folder."""
    name = member.name
    why = None
    parts = [p for p in re.split(r"[\\/]+", name) if p]
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) \
            or PurePosixPath(name).is_absolute():
        why = "an absolute path"
    elif ".." in parts:
        why = "a path that climbs out of the target folder with '..'"
    elif member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        why = f"a {kind} link to {member.linkname!r}"
    elif not (member.isfile() or member.isdir()):
        why = "a device, pipe or other special file"
    else:
        target = (root / name).resolve()
        if target != root and root not in target.parents:
            why = "a path that resolves outside the target folder"
    if why:
        raise TLCourseError(
            f"{archive} contains an unsafe member {name!r} ({why}); nothing was extracted. "
            "A flowers archive holds only plain folders and photos: it is corrupt or was "
            f"crafted. Use a fresh copy of flower_photos.tgz ({FLOWERS_URL}) or the course's "
            "flower_photos_mini.tgz."
        )


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    """Write one (already checked) member below ``root``."""
    if hasattr(tarfile, "data_filter"):  # Python 3.10.12+/3.11.4+: the stdlib's own guard too
        tar.extract(member, root, filter="data")
    else:  # pragma: no cover - older Pythons
        tar.extract(member, root, set_attrs=False)


def _extract_into(archive: Path, root: Path) -> int:
    """Stream ``archive`` into the (empty, temporary) folder ``root``; return the member count."""
    root = root.resolve()
    try:
        tar = tarfile.open(archive, mode="r|*")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _unreadable(archive, exc) from None
    count = 0
    with tar:
        try:
            for member in tar:
                _check_member(member, root, archive)
                _extract_member(tar, member, root)
                count += 1
        except TLCourseError:
            raise
        except _FILTER_ERROR as exc:  # our own checks should have caught it first
            raise TLCourseError(
                f"{archive} contains an unsafe member ({exc}); nothing was extracted. "
                "Use a fresh copy of the archive."
            ) from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise _unreadable(archive, exc) from None
        except OSError as exc:
            if "gzip" in str(exc).lower() or type(exc).__name__ == "BadGzipFile":
                raise _unreadable(archive, exc) from None
            raise TLCourseError(
                f"Could not write the photos of {archive} into {_show(root.parent)} ({exc}). "
                "Free some disk space or make data/ writable, then run again."
            ) from None
    return count


def _extract_to_temp(archive: Path, parent: Path, stem: str) -> Path:
    """Extract into a fresh hidden folder in ``parent``; on any failure, remove it."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".extract", dir=parent))
    try:
        _extract_into(Path(archive), tmp)
    except BaseException:  # KeyboardInterrupt too: leave nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def safe_extract(archive, dest, *, check=None) -> Path:
    """Extract a tar archive (``.tgz``, ``.tar.gz``, ``.tar``) into the new folder ``dest``.

    Safe: every member is checked before it is written; absolute paths, ``..``
    escapes, symbolic and hard links, devices and pipes are refused with a
    :class:`TLCourseError` naming the member (and Python's ``filter="data"``
    guards the extraction as well). Atomic: members go to a temporary folder
    beside ``dest`` that is renamed to ``dest`` only when complete; on any
    failure (or Ctrl-C) the temporary folder is removed, so ``dest`` either
    holds the whole archive or does not exist.

    ``check``, if given, is called with the temporary folder before the rename
    (raise to refuse the contents). ``dest`` must not exist yet.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise TLCourseError(f"The archive {archive} does not exist (or is not a file).")
    if dest.exists():
        raise TLCourseError(f"{dest} already exists: remove it first or extract somewhere else.")
    tmp = _extract_to_temp(archive, dest.parent, dest.name)
    try:
        if check is not None:
            check(tmp)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# --------------------------------------------------------------------------- provisioning

def _class_counts(folder: Path) -> dict[str, int]:
    """Photos per class folder (non-hidden sub-folders holding image files)."""
    counts = {}
    if not folder.is_dir():
        return counts
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir() and not _is_litter(entry.name):
            n = sum(1 for f in os.scandir(entry.path) if _is_image_name(f.name) and f.is_file())
            if n:
                counts[entry.name] = n
    return counts


def _check_flowers_layout(extracted: Path, archive: Path) -> dict[str, int]:
    top = extracted / CACHE_NAME
    counts = _class_counts(top)
    if top.is_dir() and len(counts) >= 2:
        return counts
    if top.is_dir():
        found = f"flower_photos/ with {len(counts)} class folder(s) holding photos"
    else:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in extracted.iterdir())
        found = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "") if names else "nothing"
    raise TLCourseError(
        f"{archive} does not have the flowers layout: expected a top folder flower_photos/ "
        "with one folder of photos per class (flower_photos/daisy/*.jpg, "
        f"flower_photos/roses/*.jpg, ..., at least 2 classes); found {found}. Use "
        f"flower_photos.tgz ({FLOWERS_URL}) or the course's flower_photos_mini.tgz, or "
        "repack your photos in that layout."
    )


def _read_marker(root: Path) -> dict | None:
    try:
        marker = json.loads((root / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("sha256"), str) \
            or not isinstance(marker.get("classes"), dict):
        return None
    return marker


def _trusted_cache(root: Path) -> tuple[dict | None, str]:
    """(marker, "") when data/flower_photos is complete, else (None, why not)."""
    cache = root / CACHE_NAME
    marker = _read_marker(root)
    if not cache.is_dir():
        return None, "missing"
    if marker is None:
        return None, ("present but not trusted: no marker, so an extraction was interrupted "
                      "or tlcourse did not make it")
    if _class_counts(cache) != marker["classes"]:
        return None, "present but not trusted: its photos changed since the extraction"
    return marker, ""


def _announce(root: Path, marker: dict) -> None:
    n = sum(marker["classes"].values())
    known = _known_name(marker["sha256"])
    origin = marker.get("archive", "an archive")
    if known:
        origin += f", {KNOWN_ARCHIVES[known]['what']}"
    print(f"Flowers data: {_show(root / CACHE_NAME)}, {n:,} photos of {len(marker['classes'])} "
          f"classes ({', '.join(marker['classes'])}) from {origin}.")


def _use_archive(archive: Path, root: Path, verbose: bool) -> Path:
    """Make data/flower_photos hold ``archive``'s photos (re-extracting only if needed)."""
    cache = root / CACHE_NAME
    if not archive.is_file():
        raise TLCourseError(f"The flowers archive {archive} does not exist (or is not a file).")
    sha = _archive_sha(archive)
    marker, _ = _trusted_cache(root)
    if marker is not None and marker["sha256"] == sha:
        if verbose:
            _announce(root, marker)
        return cache
    if verbose:
        _note(f"Extracting {_show(archive)} into {_show(cache)} ...")
    tmp = _extract_to_temp(archive, root, CACHE_NAME)
    try:
        counts = _check_flowers_layout(tmp, archive)
        # Swap: the marker goes first and comes back last, so any crash in
        # between leaves a cache that is not trusted.
        (root / MARKER_NAME).unlink(missing_ok=True)
        old = None
        if cache.exists() or cache.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}.", suffix=".old", dir=root))
            if cache.is_dir() and not cache.is_symlink():
                os.replace(cache, old / CACHE_NAME)
            else:
                cache.unlink()
        os.rename(tmp / CACHE_NAME, cache)
        marker = {"sha256": sha, "archive": archive.name, "classes": counts,
                  "photos": sum(counts.values())}
        _write_json_atomic(root / MARKER_NAME, marker)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        _announce(root, marker)
    return cache


def _archive_from_env(value: str, root: Path, verbose: bool) -> Path:
    """The archive that ``TLCOURSE_FLOWERS`` names (a path, or a URL downloaded to data/)."""
    if re.match(r"^(https?|file)://", value, re.IGNORECASE):
        name = Path(urllib.parse.urlparse(value).path).name or "flower_photos_download.tgz"
        dest = root / name
        if dest.is_file():
            if verbose:
                _note(f"Using {_show(dest)}, downloaded earlier from {value} "
                      "(delete it to download again).")
            return dest
        sha = FLOWERS_SHA256 if value == FLOWERS_URL else None
        try:
            return fetch.download(value, dest, sha256=sha, progress=verbose)
        except TLCourseError as exc:
            raise TLCourseError(f"{ENV_VAR}={value}: {exc}") from None
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, project_root() / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    for candidate in candidates:
        if candidate.is_dir():
            raise TLCourseError(
                f"{ENV_VAR}={value} is a folder; it must name the archive itself, e.g. "
                f"{ENV_VAR}=../shared/data/flower_photos_mini.tgz."
            )
    looked = " and ".join(str(c) for c in dict.fromkeys(candidates))
    raise TLCourseError(
        f"{ENV_VAR}={value} does not exist (looked at {looked}). Point it at "
        "flower_photos.tgz or the course's flower_photos_mini.tgz (a path or an http(s)/file "
        "URL), or unset it to use data/ or the download."
    )


def _archives_in(root: Path) -> list[Path]:
    found = {p for pattern in ("flower_photos*.tgz", "flower_photos*.tar.gz")
             for p in root.glob(pattern) if p.is_file()}
    preferred = {"flower_photos.tgz": 0, "flower_photos.tar.gz": 1}
    return sorted(found, key=lambda p: (preferred.get(p.name, 2), p.name))


def flowers_dir(verbose: bool = True) -> Path:
    """The extracted ``flower_photos`` folder (one sub-folder per class), provisioned.

    Sources, in this order:

    1. the archive named by ``TLCOURSE_FLOWERS``: a path (relative paths are
       tried from the current folder, then from the project folder) or an
       http(s)/file URL, downloaded into ``data/`` once;
    2. an archive placed in ``data/`` (``flower_photos*.tgz`` or ``.tar.gz``;
       if several, ``flower_photos.tgz`` first, and it says which one);
    3. the cache ``data/flower_photos``, trusted only with its marker
       ``data/flower_photos.source.json`` (written last);
    4. the canonical archive (:data:`FLOWERS_URL`), downloaded with a progress
       bar into ``data/`` and verified against :data:`FLOWERS_SHA256`.

    An archive is extracted (safely, atomically; see :func:`safe_extract`)
    only when the cache did not come from the same archive (same sha256).
    Any archive with the layout ``flower_photos/<class>/*.jpg`` works, e.g.
    the course's 1,000-photo ``flower_photos_mini.tgz``.
    """
    root = data_dir()
    with _locked(root):
        _clean_leftovers(root)
        tried = []
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            return _use_archive(_archive_from_env(env, root, verbose), root, verbose)
        tried.append(f"{ENV_VAR} (unset)")
        archives = _archives_in(root)
        if archives:
            if len(archives) > 1 and verbose:
                print(f"Several flowers archives in {_show(root)}: "
                      f"{', '.join(a.name for a in archives)}; using {archives[0].name} "
                      f"(set {ENV_VAR} to choose another).")
            return _use_archive(archives[0], root, verbose)
        tried.append(f"{_show(root)}/flower_photos*.tgz (none)")
        marker, why = _trusted_cache(root)
        if marker is not None:
            if verbose:
                _announce(root, marker)
            return root / CACHE_NAME
        tried.append(f"cache {_show(root / CACHE_NAME)} ({why})")
        dest = root / "flower_photos.tgz"
        try:
            archive = fetch.download(FLOWERS_URL, dest, sha256=FLOWERS_SHA256, progress=verbose)
        except TLCourseError as exc:
            tried.append(f"download {FLOWERS_URL} ({exc})")
            raise TLCourseError(
                "No flowers data found. Tried: " + "; ".join(tried) + ". " + _WHAT_TO_DO
            ) from None
        return _use_archive(archive, root, verbose)


# --------------------------------------------------------------------------- splits

@dataclass
class FlowerSplits:
    """Where the train / val / test folders are, and what they hold.

    Each folder is class-per-folder (``train_dir/daisy/*.jpg``), ready for
    :func:`image_dataset` (or ``keras.utils.image_dataset_from_directory``).
    """
    root: Path
    train_dir: Path
    val_dir: Path
    test_dir: Path
    class_names: list
    counts: dict            # split -> class -> number of photos
    seed: int = 42
    per_class: object = None
    fractions: tuple = (0.8, 0.1, 0.1)
    source_sha256: str = ""
    dirs: dict = field(init=False, repr=False)

    def __post_init__(self):
        self.dirs = {"train": self.train_dir, "val": self.val_dir, "test": self.test_dir}

    @property
    def sizes(self) -> dict:
        """Photos per split: ``{"train": 800, "val": 100, "test": 100}``."""
        return {split: sum(self.counts[split].values()) for split in SPLITS}

    def table(self) -> str:
        """A plain-text table of photos per class and split, with totals."""
        header = ["class", *SPLITS, "total"]
        rows = [[name, *(self.counts[s][name] for s in SPLITS),
                 sum(self.counts[s][name] for s in SPLITS)] for name in self.class_names]
        rows.append(["total", *(self.sizes[s] for s in SPLITS), sum(self.sizes.values())])
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines = []
        for r in [header, *rows]:
            cells = [str(r[0]).ljust(widths[0])]
            cells += [str(v).rjust(w) for v, w in zip(r[1:], widths[1:])]
            lines.append("  ".join(cells))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _split_counts(n: int, fractions) -> tuple[int, int, int]:
    """Photos of one class for train / val / test: rounded half up, at least one each."""
    n_val = max(1, math.floor(n * fractions[1] + 0.5))
    n_test = max(1, math.floor(n * fractions[2] + 0.5))
    return n - n_val - n_test, n_val, n_test


def _check_split_args(seed, per_class, fractions):
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}.")
    if per_class != "all" and (not isinstance(per_class, (int, np.integer)) or per_class < 3):
        raise ValueError(f"per_class must be an integer >= 3 or 'all', not {per_class!r}.")
    try:
        fractions = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"fractions must be three numbers (train, val, test), not {fractions!r}.")
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three positive numbers (train, val, test) adding "
                         f"up to 1, like (0.8, 0.1, 0.1); got {fractions!r}.")
    return int(seed), per_class if per_class == "all" else int(per_class), fractions


def _choose(source: Path, seed: int, per_class, fractions) -> dict:
    """split -> class -> sorted file names: deterministic and stratified."""
    chosen = {s: {} for s in SPLITS}
    for name in _class_counts(source):
        files = sorted(f.name for f in os.scandir(source / name)
                       if _is_image_name(f.name) and f.is_file())
        # One frozen-stream RandomState per class (stable across NumPy versions),
        # seeded by the seed and the class name, so classes do not affect each other.
        rng = np.random.RandomState([seed, zlib.crc32(name.encode())])
        order = [files[i] for i in rng.permutation(len(files))]
        if per_class != "all":
            order = order[:per_class]
        if len(order) < 3:
            raise TLCourseError(
                f"Class {name} of {_show(source)} has only {len(order)} photo(s): a "
                "train/val/test split needs at least 3 per class. Add photos or remove the class."
            )
        n_train, n_val, _ = _split_counts(len(order), fractions)
        parts = (order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])
        for split, part in zip(SPLITS, parts):
            chosen[split][name] = sorted(part)
    return chosen


def _split_valid(root: Path, manifest_expected: dict) -> dict | None:
    try:
        manifest = json.loads((root / "split.json").read_text())
    except (OSError, ValueError):
        return None
    if {k: manifest.get(k) for k in manifest_expected} != manifest_expected:
        return None
    files = manifest.get("files", {})
    for split in SPLITS:
        for name, names in files.get(split, {}).items():
            for fname in names:
                if not os.path.exists(root / split / name / fname):  # follows the link
                    return None
    return manifest


def _build_split(root: Path, source: Path, chosen: dict, manifest: dict) -> None:
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".build", dir=parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the split is ordinary data
        use_links = True
        for split in SPLITS:
            for name, names in chosen[split].items():
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for fname in names:
                    src, dst = source / name / fname, folder / fname
                    if use_links:
                        try:
                            # relative link: survives moving data/ as a whole
                            os.symlink(os.path.relpath(src, folder), dst)
                            continue
                        except (OSError, NotImplementedError):
                            use_links = False  # e.g. Windows without the privilege
                    shutil.copy2(src, dst)
        (tmp / "split.json").write_text(json.dumps({**manifest, "files": chosen}, indent=1,
                                                   sort_keys=True))
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=parent))
            os.replace(root, old / root.name)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def flowers_splits(seed: int = 42, per_class=None, fractions=(0.8, 0.1, 0.1),
                   verbose: bool = True) -> FlowerSplits:
    """The flowers as train / val / test folders: deterministic, stratified, disjoint.

    For each class, the sorted photo names are shuffled with a
    ``numpy.random.RandomState`` seeded by ``seed`` and the class name; the first
    ``per_class`` of them are kept and cut into train / val / test by
    ``fractions`` (rounded half up, at least one photo each). ``per_class``
    defaults to ``pick(full=200, fast=40)``: the course trains on fewer than
    1,000 photos, as the lecture does (its own split was 843 train and 104 test
    photos of 5 classes), whichever archive is used; ``"all"`` keeps every photo.

    The folders (``data/splits/<key>/{train,val,test}/<class>/``) hold symbolic
    links to the extracted photos (copies where links are not possible); they
    are built in a temporary folder and renamed when complete, and reused when
    the same archive, seed, ``per_class`` and ``fractions`` ask for them again.
    """
    if per_class is None:
        per_class = pick(full=200, fast=40)
    seed, per_class, fractions = _check_split_args(seed, per_class, fractions)
    source = flowers_dir(verbose=verbose)
    root_data = data_dir()
    with _locked(root_data):
        marker, why = _trusted_cache(root_data)
        if marker is None:
            raise TLCourseError(f"The flowers cache {_show(source)} is {why}; run again.")
        expected = {"source_sha256": marker["sha256"], "seed": seed, "per_class": per_class,
                    "fractions": list(fractions), "version": _SPLIT_VERSION}
        digest = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()
        root = root_data / "splits" / f"seed{seed}-n{per_class}-{digest[:10]}"
        manifest = _split_valid(root, expected)
        if manifest is None:
            chosen = _choose(source, seed, per_class, fractions)
            _build_split(root, source, chosen, expected)
            manifest = {**expected, "files": chosen}
    files = manifest["files"]
    class_names = sorted(files["train"])
    counts = {s: {name: len(files[s].get(name, [])) for name in class_names} for s in SPLITS}
    return FlowerSplits(root=root, train_dir=root / "train", val_dir=root / "val",
                        test_dir=root / "test", class_names=class_names, counts=counts,
                        seed=seed, per_class=per_class, fractions=fractions,
                        source_sha256=marker["sha256"])


# --------------------------------------------------------------------------- scanning

@dataclass
class FolderScan:
    """What :func:`scan_image_folder` found in a class-per-folder image set.

    ``paths`` are the original files (sorted by class, then name), ``read_paths``
    what to decode (the same file, or its RGB copy for odd formats/modes),
    ``labels`` the class indices into ``class_names``.
    """
    directory: Path
    class_names: list
    paths: list
    read_paths: list
    labels: list
    counts: dict                                   # class -> usable images
    skipped: list = field(default_factory=list)    # (path, reason)
    converted: list = field(default_factory=list)  # original paths converted to RGB
    hidden: int = 0                                # hidden files/folders ignored
    loose: list = field(default_factory=list)      # files outside the class folders

    def summary(self) -> str:
        """Per-class counts, then what was skipped, converted or ignored."""
        width = max(len(n) for n in self.class_names)
        lines = [f"  {name.ljust(width)}  {self.counts[name]:>5}" for name in self.class_names]
        extras = []
        if self.skipped:
            extras.append(f"skipped {len(self.skipped)} unusable file(s) (see the warning)")
        if self.converted:
            extras.append(f"converted {len(self.converted)} image(s) to RGB")
        if self.hidden:
            extras.append(f"ignored {self.hidden} hidden file(s)/folder(s)")
        if self.loose:
            extras.append(f"ignored {len(self.loose)} file(s) outside the class folders")
        if extras:
            lines.append("  (" + "; ".join(extras) + ")")
        return "\n".join(lines)


_SCAN_MEMO: dict[tuple, tuple] = {}
# PIL formats and modes that TensorFlow's decode_image(channels=3) reads as intended.
_TF_NATIVE = {("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "L")}


def _to_rgb(im):
    """An RGB copy of a loaded PIL image: alpha composited on white, 16-bit scaled."""
    from PIL import Image
    if im.mode.startswith("I;16"):
        im = Image.fromarray((np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8), "L")
    elif im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        im = Image.fromarray(arr.round().astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return im.convert("RGB")


def _inspect(path: str, converted_dir: Path) -> tuple[str, str, str]:
    """("ok"|"converted"|"bad", path to decode, reason) for one file."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()
        with Image.open(path) as im:
            mode = im.mode
            if (fmt, mode) in _TF_NATIVE:
                if fmt == "JPEG":  # decode at 1/8 scale: fast, still reads every byte
                    im.draft(mode, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
                return "ok", path, ""
            im.load()
            rgb = _to_rgb(im)
    except UnidentifiedImageError:
        return "bad", path, "not an image"
    except Image.DecompressionBombError as exc:
        return "bad", path, f"too large ({exc})"
    except FileNotFoundError:
        return "bad", path, "missing (a broken link?)"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
            struct.error) as exc:
        return "bad", path, f"truncated or corrupt ({exc})"
    digest = hashlib.sha256(f"v{_CONVERT_VERSION}".encode() + Path(path).read_bytes()).hexdigest()
    dest = converted_dir / f"{digest}.png"
    if not dest.is_file():
        converted_dir.mkdir(parents=True, exist_ok=True)
        tmp = fetch.temp_path_beside(dest)
        try:
            rgb.save(tmp, format="PNG")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return "converted", str(dest), f"{fmt} {mode}"


def _inspect_cached(path: str, converted_dir: Path) -> tuple[str, str, str]:
    try:
        st = os.stat(path)
    except OSError:
        return "bad", path, "missing (a broken link?)"
    if not stat.S_ISREG(st.st_mode):
        return "bad", path, "not a regular file"
    key = (path, st.st_size, st.st_mtime_ns, str(converted_dir))
    hit = _SCAN_MEMO.get(key)
    if hit is not None and (hit[0] != "converted" or os.path.exists(hit[1])):
        return hit
    result = _inspect(path, converted_dir)
    _SCAN_MEMO[key] = result
    return result


def _skipped_warning(directory: Path, skipped: list, total: int) -> str:
    shown = [f"{Path(p).relative_to(directory)} ({why})" for p, why in skipped[:5]]
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return (f"Skipped {len(skipped)} of {total} files in {directory} that are not usable "
            f"images: {'; '.join(shown)}{more}. They are left out of the data set; delete or "
            "replace them to silence this warning.")


def scan_image_folder(directory) -> FolderScan:
    """Check every file of a class-per-folder image set (``directory/<class>/*``).

    * hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) and OS
      litter (``Thumbs.db``) are ignored and counted; so are files directly in
      ``directory``;
    * every other file is opened with PIL (``verify``, then a full decode that
      catches truncation); non-images and undecodable files are skipped, with
      one warning that counts them and names a few;
    * JPEG/PNG images in RGB or greyscale are used as they are; any other
      readable image (CMYK, palette, alpha channel, 16-bit, GIF, WebP, TIFF ...)
      is converted to an RGB PNG in ``data/converted/`` (alpha composited on
      white), and that copy is what gets decoded;
    * a missing folder, a folder without class folders, or a class folder
      without usable images raises :class:`TLCourseError` naming it.
    """
    from PIL import ImageFile
    directory = Path(directory)
    if not directory.exists():
        raise TLCourseError(f"The image folder {directory} does not exist (looked from "
                            f"{Path.cwd()}). Check the path.")
    if not directory.is_dir():
        raise TLCourseError(f"{directory} is a file; give the folder that holds one "
                            "sub-folder of images per class.")
    hidden, loose, class_dirs = 0, [], []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if _is_litter(entry.name):
            hidden += 1
        elif entry.is_dir():
            class_dirs.append(entry.name)
        else:
            loose.append(entry.path)
    if not class_dirs:
        found = f"{len(loose)} file(s) directly in it" if loose else "nothing"
        raise TLCourseError(
            f"{directory} has no class folders (found {found}). Put each class's images in "
            f"its own sub-folder, e.g. {directory / 'cats'}/*.jpg and {directory / 'dogs'}/*.jpg."
        )
    converted_dir = data_dir() / "converted"
    scan = FolderScan(directory=directory, class_names=class_dirs, paths=[], read_paths=[],
                      labels=[], counts={}, hidden=hidden, loose=loose)
    seen = 0
    truncated_flag = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # TensorFlow would fail on them: find them now
    try:
        for label, name in enumerate(class_dirs):
            files = []
            for folder, subdirs, names in os.walk(directory / name):
                scan.hidden += sum(1 for d in subdirs if _is_litter(d))
                subdirs[:] = sorted(d for d in subdirs if not _is_litter(d))
                for fname in sorted(names):
                    if _is_litter(fname):
                        scan.hidden += 1
                    else:
                        files.append(os.path.join(folder, fname))
            usable = 0
            for path in files:
                seen += 1
                kind, read_path, reason = _inspect_cached(path, converted_dir)
                if kind == "bad":
                    scan.skipped.append((path, reason))
                    continue
                if kind == "converted":
                    scan.converted.append(path)
                scan.paths.append(path)
                scan.read_paths.append(read_path)
                scan.labels.append(label)
                usable += 1
            scan.counts[name] = usable
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_flag
    if scan.skipped:
        warnings.warn(_skipped_warning(directory, scan.skipped, seen), UserWarning, stacklevel=2)
    empty = [name for name in class_dirs if scan.counts[name] == 0]
    if empty:
        details = []
        for name in empty:
            bad = sum(1 for p, _ in scan.skipped if Path(p).relative_to(directory).parts[0] == name)
            details.append(f"{directory / name} ({bad} unusable file(s))" if bad
                           else f"{directory / name} (empty)")
        raise TLCourseError(
            f"No usable images in class folder(s) {', '.join(details)}. Add images (JPEG or "
            "PNG) to each class folder, or delete the folders of classes you do not want."
        )
    return scan


# --------------------------------------------------------------------------- loading

def _decode_all(tf, paths, load, autotune) -> np.ndarray:
    """All images, decoded and resized in parallel, as one uint8 array (N, h, w, 3)."""
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string),
                                             tf.zeros(len(paths), tf.int32)))
    ds = ds.map(load, num_parallel_calls=autotune).batch(128)
    out, start = None, 0
    for images, _ in ds:  # fill one array: no second copy of all the images
        if out is None:
            out = np.empty((len(paths), *images.shape[1:]), np.uint8)
        out[start:start + len(images)] = images.numpy()
        start += len(images)
    return out


def image_dataset(directory, image_size=224, batch_size=32, shuffle=True, seed=42,
                  label_mode="int", verbose=True):
    """A ``tf.data.Dataset`` of (images, labels) from ``directory/<class>/*``.

    The equivalent of ``keras.utils.image_dataset_from_directory``, built on
    :func:`scan_image_folder` so that bad files never reach training: class
    names are the sorted sub-folder names; labels are class indices
    (``label_mode="int"``), one-hot (``"categorical"``), 0/1 floats for two
    classes (``"binary"``) or absent (``None``); images are float32 in
    [0, 255] of shape ``(image_size, image_size, 3)`` (``image_size`` may also
    be ``(height, width)``), resized bilinearly like Keras, in batches of
    ``batch_size`` (``None``: unbatched). Greyscale images become 3 equal
    channels.

    The images are decoded and resized once, when the dataset is made (in
    parallel; about a second per 1,000 small photos on 2 CPUs), and kept in
    memory as uint8, so no epoch decodes again: about N x height x width x 3
    bytes (800 photos at 224 x 224: 120 MB). A file that PIL accepted but
    TensorFlow cannot decode is left out with a warning. With ``shuffle=True`` the order is
    reshuffled every epoch from ``seed``; with ``shuffle=False`` it is sorted by
    class then file name, the order of ``dataset.file_paths``, so predictions
    map back to files. Like Keras, the dataset has ``class_names`` and
    ``file_paths`` attributes (the original files, even where an RGB copy is
    what gets decoded).
    """
    import tensorflow as tf

    if isinstance(image_size, (int, np.integer)):
        height = width = int(image_size)
    else:
        height, width = (int(v) for v in image_size)
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(f"label_mode must be 'int', 'categorical', 'binary' or None, "
                         f"not {label_mode!r}.")
    scan = scan_image_folder(directory)
    k = len(scan.class_names)
    if label_mode == "binary" and k != 2:
        raise TLCourseError(f"label_mode='binary' needs exactly 2 class folders; {directory} "
                            f"has {k}. Use label_mode='int' or 'categorical'.")

    def load(path, label):
        raw = tf.io.read_file(path)
        image = tf.io.decode_image(raw, channels=3, expand_animations=False)
        image = tf.image.resize(image, (height, width), method="bilinear")
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        image.set_shape((height, width, 3))
        return image, label

    def finish(images, labels):
        images = tf.cast(images, tf.float32)
        if label_mode is None:
            return images
        if label_mode == "categorical":
            return images, tf.one_hot(labels, k)
        if label_mode == "binary":
            return images, tf.expand_dims(tf.cast(labels, tf.float32), -1)
        return images, labels

    autotune = tf.data.AUTOTUNE
    paths, labels = list(scan.read_paths), list(scan.labels)
    try:
        images = _decode_all(tf, paths, load, autotune)
    except tf.errors.OpError:
        # PIL read a file that TensorFlow cannot: find it, leave it out, say so.
        keep, failed = [], []
        for i, path in enumerate(paths):
            try:
                load(tf.constant(path), 0)
                keep.append(i)
            except tf.errors.OpError as exc:
                failed.append((scan.paths[i], exc.message.splitlines()[0][:120]))
        warnings.warn(f"TensorFlow could not decode {len(failed)} image(s) that PIL reads: "
                      + "; ".join(f"{p} ({why})" for p, why in failed[:5])
                      + ". They are left out; convert them to RGB JPEG or PNG.",
                      UserWarning, stacklevel=2)
        scan.paths = [scan.paths[i] for i in keep]
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
        scan.skipped += failed
        scan.counts = {name: labels.count(j) for j, name in enumerate(scan.class_names)}
        lost = sorted(set(range(k)) - set(labels))
        if lost:
            raise TLCourseError(f"No decodable images left in class folder(s) "
                                f"{', '.join(str(Path(directory) / scan.class_names[j]) for j in lost)}."
                                " Add JPEG or PNG images to them.") from None
        images = _decode_all(tf, paths, load, autotune)
    if verbose:
        print(f"Found {len(labels)} images belonging to {k} classes.")
        print(scan.summary())
    # The dataset holds the resized uint8 images (decoded once, here) and
    # casts each batch to float32 on the way out.
    ds = tf.data.Dataset.from_tensor_slices((images, tf.constant(labels, tf.int32)))
    del images
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if batch_size is not None:
        ds = ds.batch(batch_size)
    ds = ds.map(finish, num_parallel_calls=autotune).prefetch(autotune)
    ds.class_names = list(scan.class_names)
    ds.file_paths = list(scan.paths)
    return ds


# --------------------------------------------------------------------------- augmentation

def augmentation(seed: int = 42):
    """The course's augmentation as Keras preprocessing layers (a ``keras.Sequential``).

    The modern form of the course's
    ``ImageDataGenerator(horizontal_flip=True, rotation_range=45, zoom_range=[0.8, 1.0])``:

    * ``RandomFlip("horizontal")``;
    * ``RandomRotation(45 / 360)``: Keras gives rotations as a fraction of a
      full turn, so 0.125 means up to 45 degrees either way;
    * ``RandomZoom((-0.2, 0.0))``: in Keras a negative factor zooms *in*; a
      factor f samples a (1 + f)-sized window, so this is ImageDataGenerator's
      zoom 0.8-1.0 (zooming in by up to 20 %, never out).

    Pixels brought in at the edges repeat the nearest edge pixel, as
    ImageDataGenerator's default ``fill_mode="nearest"`` did. The layers act
    only in training (``model.fit``), and are identity at inference.
    """
    import keras
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(45 / 360, fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomZoom((-0.2, 0.0), fill_mode="nearest", seed=seed + 2),
    ], name="augmentation")
