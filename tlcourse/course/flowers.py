"""The flowers, provisioned.

The archive found (first ``TLCOURSE_FLOWERS``, then an archive in ``data/``, the cache
``data/flower_photos`` if its marker vouches for it, the download), extracted safely, split.
"""

import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..lesson.config import atomic_write, data_dir, project_root
from ..lesson.data import SPLITS, Splits, flowers_splits, split_name
from ..lesson.errors import TLCourseError
from . import fetch
from .fetch import manifest

ENV_VAR = "TLCOURSE_FLOWERS"
CACHE_NAME = "flower_photos"
MARKER_NAME = "flower_photos.source.json"
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_LITTER = {"thumbs.db", "desktop.ini", "__macosx"}
_SPLIT_VERSION = 2
FLOWERS_URL = manifest()["flowers"]["url"]
FLOWERS_SHA256 = manifest()["flowers"]["sha256"]
_GOOD_COPY = "Use flower_photos.tgz ({}) or the course's flower_photos_mini.tgz"


def _show(path) -> str:
    """``path`` relative to the project folder when inside it."""
    path, root = Path(path).resolve(), project_root().resolve()
    return str(path.relative_to(root) if path.is_relative_to(root) else path)


def _is_litter(name: str) -> bool:
    return name.startswith(".") or name.lower() in _LITTER


def _images(folder) -> list[str]:
    """Sorted names of the image files in ``folder`` (hidden files and litter left out)."""
    return sorted(
        f.name
        for f in os.scandir(folder)
        if f.is_file() and not _is_litter(f.name) and f.name.lower().endswith(IMAGE_EXTENSIONS)
    )


@contextlib.contextmanager
def _locked(folder: Path):
    """Serialise provisioning in ``folder`` (two notebooks or runs at once); closing unlocks."""
    with open(folder / ".tlcourse.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _flowers_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """The extraction filter.

    The standard library's ``data`` filter (no absolute paths, nothing outside the target folder, no
    device files), and no links at all: a flowers archive holds only folders and photos.
    """
    member = tarfile.data_filter(member, dest_path)
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise tarfile.FilterError(f"{member.name!r} is a {kind} link to {member.linkname!r}")
    return member


def _extract_to_temp(archive: Path, parent: Path, stem: str) -> Path:
    """Stream ``archive`` into a new hidden folder in ``parent``; removed on any failure."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".extract", dir=parent)).resolve()
    try:
        with open(archive, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            # tarfile's own stream reader takes a gzip file cut short for a shorter archive
            # (it checks neither the length nor the checksum at the end); gzip's reader does
            stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
            with tarfile.open(fileobj=stream, mode="r|" if gzipped else "r|*") as tar:
                for member in tar:
                    tar.extract(member, tmp, filter=_flowers_filter)
            while stream.read(1 << 20):  # to the end, where gzip checks the length and CRC
                pass
        return tmp
    except tarfile.FilterError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TLCourseError(
            f"{archive} contains an unsafe member ({exc}); nothing was extracted. A flowers "
            "archive holds only plain folders and photos: it is corrupt or was crafted. "
            f"{_GOOD_COPY.format(FLOWERS_URL)}."
        ) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TLCourseError(
            f"{archive} is not a readable .tgz archive ({exc}); re-download it or point "
            f"{ENV_VAR} at a good copy."
        ) from None
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TLCourseError(
            f"Could not write the photos of {archive} into {_show(parent)} ({exc}). "
            "Free some disk space or make data/ writable."
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def safe_extract(archive, dest) -> Path:
    """Extract the tar ``archive`` into the new folder ``dest``, all or nothing.

    Unsafe members are refused (see :func:`_flowers_filter`).
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise TLCourseError(f"The archive {archive} does not exist (or is not a file).")
    if dest.exists():
        raise TLCourseError(f"{dest} already exists: remove it first or extract somewhere else.")
    os.rename(_extract_to_temp(archive, dest.parent, dest.name), dest)
    return dest


def _class_counts(folder: Path) -> dict[str, int]:
    """Image files per class folder of ``folder`` (non-hidden sub-folders holding images)."""
    counts = (
        {
            e.name: len(_images(e.path))
            for e in os.scandir(folder)
            if e.is_dir() and not _is_litter(e.name)
        }
        if folder.is_dir()
        else {}
    )
    return {name: counts[name] for name in sorted(counts) if counts[name]}


def _check_layout(extracted: Path, archive: Path) -> dict[str, int]:
    """Photos per class of ``extracted/flower_photos``; a TLCourseError if under 2 classes."""
    counts = _class_counts(extracted / CACHE_NAME)
    if len(counts) >= 2:
        return counts
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in extracted.iterdir())
    found = (
        f"flower_photos/ with {len(counts)} class folder(s) holding photos"
        if (extracted / CACHE_NAME).is_dir()
        else ", ".join(names[:6]) + (" ..." if len(names) > 6 else "") or "nothing"
    )
    raise TLCourseError(
        f"{archive} does not have the flowers layout: expected a top folder flower_photos/ "
        "with one folder of photos per class (flower_photos/daisy/*.jpg, ..., at least 2 "
        f"classes); found {found}. {_GOOD_COPY.format(FLOWERS_URL)}, or repack your photos "
        "in that layout."
    )


def _trusted_marker(root: Path) -> tuple[dict | None, str]:
    """(marker, "") when ``root/flower_photos`` is complete, else (None, why not)."""
    if not (root / CACHE_NAME).is_dir():
        return None, "missing"
    try:
        marker = json.loads((root / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None, (
            "present but not trusted: no marker, so an extraction was interrupted or tlcourse "
            "did not make it"
        )
    if _class_counts(root / CACHE_NAME) != marker.get("classes"):
        return None, "present but not trusted: its photos changed since the extraction"
    return marker, ""


def _use_archive(archive: Path, root: Path, verbose: bool) -> Path:
    """Make ``root/flower_photos`` hold ``archive``'s photos, extracting only when needed."""
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
            marker = dict(
                sha256=sha, archive=archive.name, classes=counts, photos=sum(counts.values())
            )
            with atomic_write(root / MARKER_NAME) as part:
                part.write_text(json.dumps(marker, indent=2, sort_keys=True))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return marker


def _archive_from_env(value: str, root: Path, verbose: bool) -> Path:
    """The archive ``TLCOURSE_FLOWERS=value`` names: a path, or a URL downloaded into ``root``."""
    if re.match(r"^(https?|file)://", value, re.IGNORECASE):
        dest = root / (Path(urllib.parse.urlparse(value).path).name or "flower_photos_download.tgz")
        try:
            return (
                dest
                if dest.is_file()
                else fetch.download(
                    value,
                    dest,
                    sha256=FLOWERS_SHA256 if value == FLOWERS_URL else None,
                    progress=verbose,
                )
            )
        except TLCourseError as exc:
            raise TLCourseError(f"{ENV_VAR}={value}: {exc}") from None
    path = Path(value).expanduser()
    candidates = list(
        dict.fromkeys([path] if path.is_absolute() else [Path.cwd() / path, project_root() / path])
    )
    if found := [c for c in candidates if c.exists()]:
        if found[0].is_dir():
            raise TLCourseError(
                f"{ENV_VAR}={value} is a folder; it must name the archive itself, e.g. "
                f"{ENV_VAR}=../shared/data/flower_photos_mini.tgz."
            )
        return found[0]
    raise TLCourseError(
        f"{ENV_VAR}={value} does not exist (looked at {' and '.join(map(str, candidates))})."
        " Point it at flower_photos.tgz or the course's flower_photos_mini.tgz (a path or an "
        "http(s)/file URL), or unset it to use data/ or the download."
    )


def flowers_dir(verbose: bool = True) -> Path:
    """The extracted flowers, from the first source that has them.

    ``verbose``: say which source is used.
    """
    root = data_dir()
    with _locked(root):
        leftovers = [  # from runs that were killed
            *root.glob(f".{CACHE_NAME}.*"),
            *root.glob(f".{MARKER_NAME}.*"),
            *root.glob("splits/.*"),
        ]
        for leftover in leftovers:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()
        archives = sorted(
            {
                p
                for pattern in ("flower_photos*.tgz", "flower_photos*.tar.gz")
                for p in root.glob(pattern)
                if p.is_file()
            },
            key=lambda p: (p.name != "flower_photos.tgz", p.name),
        )
        marker, why = _trusted_marker(root)
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            marker = _use_archive(_archive_from_env(env, root, verbose), root, verbose)
        elif archives:
            if len(archives) > 1 and verbose:
                print(
                    f"Several flowers archives in {_show(root)}: "
                    f"{', '.join(a.name for a in archives)}; "
                    f"using {archives[0].name} (set {ENV_VAR} to choose another)."
                )
            marker = _use_archive(archives[0], root, verbose)
        elif marker is None:
            try:
                archive = fetch.download(
                    FLOWERS_URL, root / "flower_photos.tgz", sha256=FLOWERS_SHA256, progress=verbose
                )
            except TLCourseError as exc:
                raise TLCourseError(
                    f"No flowers data found. Tried: {ENV_VAR} (unset); "
                    f"{_show(root)}/flower_photos*.tgz (none); cache {_show(root / CACHE_NAME)} "
                    f"({why}); download {FLOWERS_URL} ({exc}). Place flower_photos.tgz in data/ "
                    f"or set {ENV_VAR}=/path/to/flower_photos_mini.tgz (from the project folder: "
                    f"{ENV_VAR}=../shared/data/flower_photos_mini.tgz)."
                ) from None
            marker = _use_archive(archive, root, verbose)
    if verbose:
        known = {}
        for entry in (manifest()["flowers"], manifest()["flowers_mini"]):
            known[entry["sha256"]] = f", {entry['what']}"
        classes = marker["classes"]
        print(
            f"Flowers data: {_show(root / CACHE_NAME)}, {sum(classes.values()):,} photos of "
            f"{len(classes)} classes ({', '.join(classes)}) from "
            f"{marker['archive']}{known.get(marker['sha256'], '')}."
        )
    return root / CACHE_NAME


def _inspect(path: Path):
    """("ok", None) for a JPEG/PNG in RGB or grey.

    ("converted", RGB image) for any other readable image (alpha composited on white, 16-bit
    scaled); ("bad", reason) otherwise.
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()  # a full decode catches truncation
            if im.format in ("JPEG", "PNG") and im.mode in ("RGB", "L"):
                return "ok", None
            if im.mode.startswith("I;16"):
                im = Image.fromarray((np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8), "L")
            elif im.mode in ("I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                scale = 255 / np.ptp(arr) if np.ptp(arr) else 0
                im = Image.fromarray(((arr - arr.min()) * scale).round().astype(np.uint8), "L")
            if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
                white = Image.new("RGBA", im.size, (255, 255, 255, 255))
                return "converted", Image.alpha_composite(white, im.convert("RGBA")).convert("RGB")
            return "converted", im.convert("RGB")
    except UnidentifiedImageError:
        return "bad", "not an image"
    except Image.DecompressionBombError as exc:
        return "bad", f"too large ({exc})"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        return "bad", f"truncated or corrupt ({exc})"


def _populate(dest: Path, sources: dict[str, list[Path]], directory: Path) -> list[Path]:
    """Fill ``dest/<folder>/`` with the images of ``sources[folder]``; return the converted ones.

    The images are laid out as ``image_dataset_from_directory`` reads them: JPEG/PNG linked, other
    images converted to RGB PNG, broken files left out with a warning.
    """
    skipped, converted = [], []
    for folder, paths in sources.items():
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for src in paths:
            kind, detail = _inspect(src)
            if kind == "bad":
                skipped.append((src, detail))
            elif kind == "converted":
                detail.save(dest / folder / f"{src.stem}.png", format="PNG")
                converted.append(src)
            else:
                try:
                    os.symlink(
                        os.path.relpath(src.resolve(), dest / folder), dest / folder / src.name
                    )
                except OSError:  # no symbolic links here: copy
                    shutil.copy2(src, dest / folder / src.name)
    if skipped:
        shown = "; ".join(f"{Path(p).relative_to(directory)} ({why})" for p, why in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(
            f"Skipped {len(skipped)} of {sum(map(len, sources.values()))} files in {directory} "
            f"that are not usable images: {shown}{more}. They are left out of the data set; delete "
            "or replace them to silence this warning.",
            UserWarning,
            stacklevel=3,
        )
    return converted


def _choose(source: Path, seed: int, per_class: int, grow_test: bool) -> dict[str, list[Path]]:
    """``split/class`` -> photos.

    Per class, the sorted names shuffled by a RandomState seeded with (seed, crc32(class)), the
    first ``per_class`` cut 80/10/10 (val and test rounded half up, at least one each); with
    ``grow_test`` every photo beyond them joins the test split.
    """
    chosen = {}
    for name in _class_counts(source):
        files = _images(source / name)
        rng = np.random.RandomState([seed, zlib.crc32(name.encode())])
        order = [files[i] for i in rng.permutation(len(files))]
        n = len(order[:per_class])
        if n < 3:
            raise TLCourseError(
                f"Class {name} of {_show(source)} has only {len(order)} photo(s): a "
                "train/val/test split needs at least 3. Add photos or remove the class."
            )
        n_val = max(1, int(n * 0.1 + 0.5))
        cuts = (
            order[: n - 2 * n_val],
            order[n - 2 * n_val : n - n_val],
            order[n - n_val : per_class] + (order[per_class:] if grow_test else []),
        )
        chosen.update(
            {
                f"{split}/{name}": [source / name / f for f in sorted(part)]
                for split, part in zip(SPLITS, cuts)
            }
        )
    return chosen


def make_splits(
    seed: int = 42, per_class: int = 200, grow_test: bool = False, verbose: bool = False
) -> Splits:
    """Provision ``data/splits/seed<seed>-n<per_class>/{train,val,test}/<class>/``.

    :func:`_choose`'s split in clean images, built aside, renamed when complete, reused while
    nothing changed.
    """
    if not isinstance(per_class, int) or per_class < 3 or not isinstance(seed, int) or seed < 0:
        raise ValueError(
            f"seed must be an integer >= 0 and per_class an integer >= 3, "
            f"not {seed!r}, {per_class!r}."
        )
    source, root = flowers_dir(verbose=verbose), data_dir()
    dest = root / "splits" / split_name(seed, per_class)
    with _locked(root):
        marker, why = _trusted_marker(root)
        if marker is None:
            raise TLCourseError(f"The flowers cache {_show(source)} is {why}; run again.")
        expected = {
            "source_sha256": marker["sha256"],
            "seed": seed,
            "per_class": per_class,
            "grow_test": grow_test,
            "version": _SPLIT_VERSION,
        }
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((dest / "split.json").read_text())
            if {k: info.get(k) for k in expected} == expected:
                return flowers_splits(per_class, seed)
        chosen = _choose(source, seed, per_class, grow_test)
        (root / "splits").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=root / "splits") as tmp:
            tmp = Path(
                tmp
            )  # renamed when complete: at the same depth, the relative links stay right
            os.chmod(tmp, 0o755)
            _populate(tmp, chosen, source)
            files = {s: {} for s in SPLITS}
            for key in chosen:
                split, name = key.split("/")
                files[split][name] = sorted(os.listdir(tmp / key))
            (tmp / "split.json").write_text(
                json.dumps({**expected, "files": files}, indent=1, sort_keys=True)
            )
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(tmp, dest)
    return flowers_splits(per_class, seed)
