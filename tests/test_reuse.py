"""tl.reuse: long computations saved by digest, reused only in a lecture demo; make demo's check."""

import functools
import json

import numpy as np
import pytest

import tlcourse as tl
from tlcourse.course import demo
from tlcourse.lesson.reuse import REUSE_ENV, digest


def _counting(calls):
    def train(epochs, scale=1.0):
        calls.append(epochs)
        return {
            "weights": np.arange(epochs) * scale,
            "history": {"loss": [1.0 / (e + 1) for e in range(epochs)]},
        }

    return train


@pytest.fixture
def run_folders(tmp_path, monkeypatch):
    """A full run's build folder, then a demo's, as TLCOURSE_BUILD switches between them."""
    full, live = tmp_path / "build", tmp_path / "build-demo"
    monkeypatch.setenv("TLCOURSE_BUILD", str(full))
    monkeypatch.delenv(REUSE_ENV, raising=False)
    return full, live


def test_without_the_switch_everything_is_computed_and_saved(run_folders, capsys):
    full, _ = run_folders
    calls = []
    train = _counting(calls)
    first = tl.reuse("03-scratch", functools.partial(train, 3), lr=1e-3)
    second = tl.reuse("03-scratch", functools.partial(train, 3), lr=1e-3)
    assert calls == [3, 3], "a student's run trains every time, saved results or not"
    np.testing.assert_array_equal(first["weights"], second["weights"])
    assert len(list((full / "reuse").glob("03-scratch-*.pkl"))) == 1
    assert capsys.readouterr().out == "", "nothing to say when nothing is reused"


def test_a_demo_reuses_the_same_recipe_and_recomputes_a_changed_one(
    run_folders, monkeypatch, capsys
):
    full, live = run_folders
    calls = []
    train = _counting(calls)
    saved = tl.reuse("03-scratch", functools.partial(train, 3), lr=1e-3)

    monkeypatch.setenv("TLCOURSE_BUILD", str(live))
    monkeypatch.setenv(REUSE_ENV, str(full / "reuse"))
    again = tl.reuse("03-scratch", functools.partial(train, 3), lr=1e-3)
    assert calls == [3], "the same recipe is loaded, not trained"
    np.testing.assert_array_equal(again["weights"], saved["weights"])
    assert again["history"] == saved["history"]
    assert "reused from the full run" in capsys.readouterr().out

    tl.reuse("03-scratch", functools.partial(train, 3), lr=1e-4)  # another parameter
    tl.reuse("03-scratch", functools.partial(train, 4), lr=1e-3)  # another argument
    tl.reuse("03-scratch", functools.partial(train, 3), lr=1e-3, x=np.ones(2))  # other data
    assert calls == [3, 3, 4, 3]
    out = capsys.readouterr().out
    assert out.count("computed (") == 3 and "saved no result with this recipe" in out
    kept = sorted(path.name for path in (full / "reuse").iterdir())
    assert all(name.endswith(".pkl") and not name.startswith(".") for name in kept), kept


def test_the_digest_follows_code_data_and_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("TLCOURSE_FAST", raising=False)

    def one():
        return 1

    def other():
        return 2

    a = np.zeros(3)
    base = digest("x", one, {"x": a})
    assert digest("x", one, {"x": a.copy()}) == base, "same content, same digest"
    assert digest("x", other, {"x": a}) != base, "other code"
    assert digest("x", one, {"x": a + 1}) != base, "other data"
    assert digest("y", one, {"x": a}) != base, "other name"
    photo = tmp_path / "photo.txt"
    photo.write_text("a")
    with_file = digest("x", one, {"f": photo})
    photo.write_text("b")
    assert digest("x", one, {"f": photo}) != with_file, "a file is keyed by its content"
    monkeypatch.setenv("TLCOURSE_FAST", "1")
    assert digest("x", one, {"x": a}) != base, "fast mode never reuses a full run's result"


def test_make_demo_compares_results_not_measurements(tmp_path):
    for folder, numbers in [
        ("build", {"test_accuracy": 0.92, "train_seconds": 155.0, "peak_memory_mib": 2000}),
        ("build-demo", {"test_accuracy": 0.92, "train_seconds": 0.1, "peak_memory_mib": 900}),
    ]:
        (tmp_path / folder / "results").mkdir(parents=True)
        (tmp_path / folder / "results" / "05.json").write_text(json.dumps(numbers))
    full = demo.results_of(tmp_path / "build", "05")
    live = demo.results_of(tmp_path / "build-demo", "05")
    assert full == live == {"test_accuracy": 0.92}
    assert demo.differences(full, {"test_accuracy": 0.89}) == [
        "test_accuracy: full run 0.92, demo 0.89"
    ]


def test_make_demo_needs_a_full_run_first(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "project_root", lambda: tmp_path)
    with pytest.raises(tl.TLCourseError, match="make run"):
        demo.main([])
