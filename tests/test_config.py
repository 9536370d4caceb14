"""The fast-mode switch, seeds, build folders, atomic writes and recorded numbers."""

import json

import numpy as np
import pytest

import tlcourse as tl
from tlcourse.lesson import config


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_fast_mode_reads_one_switch(monkeypatch, value, expected):
    monkeypatch.setenv("TLCOURSE_FAST", value)
    assert config.fast_mode() is expected
    assert config.pick(full=10, fast=2) == (2 if expected else 10)


def test_fast_mode_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("TLCOURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="TLCOURSE_FAST"):
        config.fast_mode()


def test_set_seed_makes_numpy_and_keras_repeatable():
    import keras

    config.set_seed(7)
    a = np.random.rand(3), keras.random.uniform((3,)).numpy()
    config.set_seed(7)
    b = np.random.rand(3), keras.random.uniform((3,)).numpy()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_fast_mode_and_tests_never_write_the_lecture_build(monkeypatch, tmp_path):
    monkeypatch.delenv("TLCOURSE_BUILD", raising=False)
    monkeypatch.setenv("TLCOURSE_FAST", "0")
    assert config.build_dir() == config.project_root() / "build"
    monkeypatch.setenv("TLCOURSE_FAST", "1")
    assert config.build_dir() == config.project_root() / "build-fast"
    monkeypatch.setenv("TLCOURSE_BUILD", str(tmp_path / "b"))
    assert (
        config.build_dir("models") == tmp_path / "b" / "models"
        and (tmp_path / "b" / "models").is_dir()
    )


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "result.json"
    with config.atomic_write(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".json"
        tmp.write_text("{}")
        assert not dest.exists()
    assert dest.read_text() == "{}"
    with pytest.raises(RuntimeError), config.atomic_write(dest) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("interrupted")
    assert dest.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == [
        "result.json"
    ]


def test_record_merges_numbers_with_memory_and_shows_a_table(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_BUILD", str(tmp_path))
    tl.record("nb", accuracy=0.9)
    table = tl.record("nb", epochs=3, per_class={"a": 1})
    saved = json.loads((tmp_path / "results" / "nb.json").read_text())
    assert saved["accuracy"] == 0.9 and saved["epochs"] == 3 and saved["peak_memory_mib"] > 10
    assert saved["per_class"] == {"a": 1}
    assert table.loc["epochs", "value"] == 3 and "per_class" not in table.index
