import numpy as np
import pytest

from tlcourse import config


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


def test_report_records_numbers_and_memory(tmp_path, monkeypatch):
    from tlcourse import report

    monkeypatch.setattr(report, "build_dir", lambda *p: tmp_path)
    report.record("nb", accuracy=0.9)
    out = report.record("nb", epochs=3)
    assert out["accuracy"] == 0.9 and out["epochs"] == 3 and out["peak_memory_mib"] > 10
