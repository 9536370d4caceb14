"""Accuracies with Wilson intervals and exact McNemar tests, against known values."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import tlcourse as tl  # noqa: E402


def answers(right, n):
    return np.arange(n) < right


@pytest.mark.parametrize("k, n, low, high", [
    (8, 10, 0.4902, 0.9433),      # Wilson (1927) score interval, z = 1.96
    (88, 100, 0.8019, 0.9300),
    (0, 20, 0.0, 0.1611),
    (100, 100, 0.9630, 1.0),
])
def test_wilson_interval_known_values(k, n, low, high):
    acc = tl.accuracy(answers(k, n))
    assert (acc.correct, acc.n, acc.value) == (k, n, k / n)
    assert acc.low == pytest.approx(low, abs=1e-4) and acc.high == pytest.approx(high, abs=1e-4)
    assert str(acc).startswith(f"{k / n:.1%} (95% CI")


def test_mcnemar_exact_known_values():
    # 10 photos only A gets right, 2 only B: p = 2 * P(X <= 2 | 12, 1/2) = 2 * 79 / 4096
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 5, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 5, bool)
    t = tl.mcnemar(a, b)
    assert (t.a_only, t.b_only) == (10, 2)
    assert t.p_value == pytest.approx(158 / 4096)
    assert tl.mcnemar(b, a).p_value == pytest.approx(t.p_value)
    assert tl.mcnemar(a, a).p_value == 1.0  # no disagreement, no evidence
    with pytest.raises(ValueError, match="same photos"):
        tl.mcnemar(a, b[:-1])


def test_verdict_is_computed_from_the_answers():
    a = np.array([1] * 10 + [0] * 2 + [1] * 50, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50, bool)
    assert tl.verdict("fine-tuned", a, "head", b).startswith("fine-tuned beats head (10 photos only")
    assert tl.verdict("head", b, "fine-tuned", a).startswith("fine-tuned beats head")
    close = np.array([1] * 3 + [0] * 2 + [1] * 50, bool), np.array([0] * 3 + [1] * 2 + [1] * 50, bool)
    sentence = tl.verdict("A", close[0], "B", close[1])
    assert "cannot be told apart on these 55 photos" in sentence and "p = 1" in sentence


def test_compare_table():
    table = tl.compare({"head": answers(85, 100), "fine-tuned": answers(90, 100)}, baseline="head").data
    assert table.loc["fine-tuned", "only this right"] == 5 and table.loc["fine-tuned", "only baseline right"] == 0
    assert table.loc["fine-tuned", "McNemar p"] == pytest.approx(0.0625)
    assert table.loc["head", "accuracy"] == 0.85 and np.isnan(table.loc["head", "McNemar p"])


def test_show_misclassified(tmp_path):
    paths = []
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), color).save(paths[-1])
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    fig = tl.show_misclassified(paths, np.array([0, 0, 1]), probs, ["a", "b"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["true: a\npred: b (70%)", "true: b\npred: a (60%)"]  # most confident first
    fig = tl.show_misclassified(paths[:1], np.array([0]), probs[:1], ["a", "b"])
    assert "No mistakes" in fig.axes[0].texts[0].get_text()
