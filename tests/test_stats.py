"""The course's statistics (tlcourse.lesson.stats), against known values.

Accuracies with Wilson intervals, exact McNemar tests, intervals on paired differences and Holm's
correction.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import tlcourse as tl  # noqa: E402
from tlcourse.lesson.stats import paired_difference_interval  # noqa: E402


def predictions(right, n, classes=5):
    """Labels and predictions of ``n`` photos of which the first ``right`` are predicted right."""
    y_true = np.arange(n) % classes
    y_pred = np.where(np.arange(n) < right, y_true, (y_true + 1) % classes)
    return y_true, y_pred


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (8, 10, 0.4902, 0.9433),  # Wilson (1927) score interval, z = 1.96
        (88, 100, 0.8019, 0.9300),
        (0, 20, 0.0, 0.1611),
        (100, 100, 0.9630, 1.0),
    ],
)
def test_wilson_interval_known_values(k, n, low, high):
    acc = tl.accuracy(*predictions(k, n))
    assert (acc.correct, acc.n, acc.value) == (k, n, k / n)
    assert acc.low == pytest.approx(low, abs=1e-4) and acc.high == pytest.approx(high, abs=1e-4)
    assert str(acc).startswith(f"{k / n:.1%} (95% CI")


def test_accuracy_takes_y_true_then_y_pred_like_scikit_learn():
    from sklearn.metrics import accuracy_score

    y_true = np.array([0, 1, 2, 2, 1])
    y_pred = np.array([0, 2, 2, 2, 0])
    assert tl.accuracy(y_true, y_pred).value == accuracy_score(y_true, y_pred) == 0.6
    with pytest.raises(ValueError, match="one label per photo"):
        tl.accuracy(y_true, y_pred[:-1])


def paired(a_right, b_right):
    """Labels and two models' predictions from right/wrong vectors."""
    y_true = np.zeros(len(a_right), int)
    return y_true, np.where(a_right, 0, 1), np.where(b_right, 0, 1)


def test_mcnemar_exact_known_values():
    # 10 photos only A gets right, 2 only B: p = 2 * P(X <= 2 | 12, 1/2) = 2 * 79 / 4096
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 5, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 5, bool)
    y, pa, pb = paired(a, b)
    t = tl.mcnemar(y, pa, pb)
    assert (t.a_only, t.b_only, t.n) == (10, 2, 67)
    assert t.p_value == pytest.approx(158 / 4096)
    assert t.difference == pytest.approx(8 / 67)
    assert tl.mcnemar(y, pb, pa).p_value == pytest.approx(t.p_value)
    assert tl.mcnemar(y, pa, pa).p_value == 1.0  # no disagreement, no evidence
    with pytest.raises(ValueError, match="one label per photo"):
        tl.mcnemar(y, pa, pb[:-1])


def test_newcombes_paired_interval_brackets_the_difference_and_agrees_with_wald_on_many_photos():
    low, high = paired_difference_interval(12, 9, 2, 21)
    assert low < 7 / 44 < high and low > 0  # 9 against 2 on 44 photos: A ahead, just
    # no disagreement at all still leaves an interval around 0, as wide as n allows
    low, high = paired_difference_interval(60, 0, 0, 40)
    assert low < 0 < high and high - low < 0.1
    # swapping A and B mirrors the interval
    assert paired_difference_interval(12, 2, 9, 21) == pytest.approx(
        tuple(-x for x in reversed(paired_difference_interval(12, 9, 2, 21)))
    )
    # on many photos it is the textbook normal interval:
    # d +- 1.96 sqrt((b + c - (b - c)^2 / n) / n^2)
    both, a_only, b_only, neither = 7000, 900, 600, 1500
    n = both + a_only + b_only + neither
    d = (a_only - b_only) / n
    half = 1.96 * np.sqrt((a_only + b_only - (a_only - b_only) ** 2 / n) / n**2)
    low, high = paired_difference_interval(both, a_only, b_only, neither)
    assert low == pytest.approx(d - half, abs=2e-3) and high == pytest.approx(d + half, abs=2e-3)


def test_holm_adjustment_known_values():
    adjusted = tl.holm([0.01, 0.04, 0.03, 0.20])
    # sorted: 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> 0.09 (monotone), 0.20*1 = 0.20
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert tl.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_verdict_is_computed_from_the_predictions():
    a = np.array([1] * 10 + [0] * 2 + [1] * 50, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50, bool)
    y, pa, pb = paired(a, b)
    assert tl.verdict(y, pa, pb, "fine-tuned", "head").startswith(
        "fine-tuned beats head on these 62 photos (10 photos only fine-tuned"
    )
    assert tl.verdict(y, pb, pa, "head", "fine-tuned").startswith("fine-tuned beats head")
    close = paired(
        np.array([1] * 3 + [0] * 2 + [1] * 50, bool), np.array([0] * 3 + [1] * 2 + [1] * 50, bool)
    )
    sentence = tl.verdict(*close, "A", "B")
    assert "cannot be told apart on these 55 photos" in sentence and "p = 1" in sentence
    assert "A - B = +1.8% (95% CI" in sentence  # what the test could have seen
    assert "so a true difference beyond that interval is unlikely" in sentence
    # 0 against 5 of 20: exact p = 0.0625, yet the interval on the difference excludes zero
    margin = paired(
        np.array([0] * 5 + [1] * 10 + [0] * 5, bool), np.array([1] * 15 + [0] * 5, bool)
    )
    sentence = tl.verdict(*margin, "fine-tuned", "head")
    assert "cannot be told apart on these 20 photos" in sentence and "p = 0.0625" in sentence
    assert "the interval leans to one side" in sentence and "more photos would decide" in sentence
    assert "beyond that interval is unlikely" not in sentence


def test_a_family_of_verdicts_is_holm_adjusted():
    head = np.array([1] * 80 + [0] * 20, bool)
    strong = np.array([1] * 80 + [1] * 12 + [0] * 8, bool)  # 12 only it, 0 only head: p = 4.9e-4
    weak = np.array([1] * 80 + [1] * 5 + [0] * 15, bool)  # 5 vs 0: p = 0.0625
    y = np.zeros(100, int)
    preds = {
        name: np.where(right, 0, 1)
        for name, right in (("head", head), ("strong", strong), ("weak", weak))
    }
    sentences = tl.verdicts(y, preds, baseline="head")
    assert (
        sentences[0].startswith("strong beats head") and "Holm-adjusted for 2 tests" in sentences[0]
    )
    assert sentences[1].startswith("weak and head cannot be told apart")


def test_compare_table():
    y, head = predictions(85, 100)
    _, tuned = predictions(90, 100)
    table = tl.compare(y, {"head": head, "fine-tuned": tuned}, baseline="head")
    assert (
        table.loc["fine-tuned", "only this right"] == 5
        and table.loc["fine-tuned", "only baseline right"] == 0
    )
    assert table.loc["fine-tuned", "McNemar p"] == pytest.approx(0.0625)
    assert table.loc["fine-tuned", "difference %"] == pytest.approx(5.0)
    assert table.loc["head", "accuracy %"] == 85.0 and table.loc["head", "McNemar p"] == ""


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
