"""Shared fixtures: an isolated data folder, and the course's mini flowers archive."""
from __future__ import annotations

from pathlib import Path

import pytest

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
