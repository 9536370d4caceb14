"""Shared fixtures: an isolated data folder, and the course's mini flowers archive.

Every test (nbval's notebook kernels included) writes its build output to a temporary folder:
``TLCOURSE_BUILD`` is set here, before any kernel starts, so the lecture build (``build/``)
and fast mode's ``build-fast/`` are never touched by ``make test``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TLCOURSE_BUILD", tempfile.mkdtemp(prefix="tlcourse-test-build-"))

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MINI_ARCHIVE = PROJECT_ROOT.parent / "shared" / "data" / "flower_photos_mini.tgz"


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """A fresh ``TLCOURSE_DATA`` folder, with ``TLCOURSE_FLOWERS`` unset: the real
    ``data/`` cache is never touched."""
    home = tmp_path / "data_home"
    home.mkdir()
    monkeypatch.setenv("TLCOURSE_DATA", str(home))
    monkeypatch.delenv("TLCOURSE_FLOWERS", raising=False)
    return home


@pytest.fixture
def mini_archive() -> Path:
    """``../shared/data/flower_photos_mini.tgz`` (1,000 photos); skips when absent."""
    if not MINI_ARCHIVE.is_file():
        pytest.skip(f"{MINI_ARCHIVE} not found")
    return MINI_ARCHIVE
