"""Evidence on test sets of a few hundred photos (notebooks 03-08).

Every metric takes ``(y_true, y_pred)`` as scikit-learn's do. An accuracy comes with its Wilson 95%
interval; "A beats B" is decided by an exact McNemar test on the photos where the two disagree, and
comes with a 95% interval on the difference A - B, which says how large a difference the test could
have missed. A family of comparisons is judged with Holm's step-down correction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest


def _wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials."""
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _right(y_true, y_pred) -> np.ndarray:
    """Right (True) or wrong (False) per photo; a ValueError if the two do not line up."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must be one label per photo: {y_true.size} vs {y_pred.size}"
        )
    if y_true.size == 0:
        raise ValueError("accuracy of no predictions")
    return y_true == y_pred


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``n`` right, with the Wilson interval ``[low, high]``."""

    correct: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.correct / self.n

    def __str__(self) -> str:
        return f"{self.value:.1%} (95% CI {self.low:.1%}-{self.high:.1%}, n = {self.n})"


def proportion(count: int, n: int, confidence: float = 0.95) -> Accuracy:
    """``count`` of ``n`` as a share with its Wilson interval.

    For a rate that is not an accuracy of predictions: photos called "daisy", a paper's reported
    accuracy on its test set.
    """
    return Accuracy(int(count), int(n), *_wilson(int(count), int(n), confidence))


def accuracy(y_true, y_pred, confidence: float = 0.95) -> Accuracy:
    """The share of photos predicted right, with its Wilson interval (about +-1/sqrt(n) wide).

    ``y_true``: each photo's class; ``y_pred``: the predicted class.
    """
    right = _right(y_true, y_pred)
    k, n = int(right.sum()), int(right.size)
    return Accuracy(k, n, *_wilson(k, n, confidence))


@dataclass(frozen=True)
class Paired:
    """Two models on the same photos.

    ``a_only``, ``b_only``: photos only A, only B gets right; ``p_value``: the exact McNemar test;
    ``difference``: accuracy A minus accuracy B, with its 95% interval ``[low, high]``.
    """

    a_only: int
    b_only: int
    n: int
    p_value: float
    difference: float
    low: float
    high: float


def paired_difference_interval(
    both: int, a_only: int, b_only: int, neither: int
) -> tuple[float, float]:
    """95% interval on the difference of two paired accuracies, A - B.

    Newcombe's hybrid score interval for paired proportions (Newcombe 1998, method 10; as worked
    in Altman et al., *Statistics with Confidence*, 2000): the Wilson intervals of the two
    accuracies, combined with the correlation of the pairs, continuity-corrected.
    """
    n = both + a_only + b_only + neither
    p1, p2 = (both + a_only) / n, (both + b_only) / n
    l1, u1 = _wilson(both + a_only, n)
    l2, u2 = _wilson(both + b_only, n)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    cross = both * neither - a_only * b_only
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / np.sqrt(margins) if margins else 0.0
    below = np.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    above = np.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    return float(p1 - p2 - below), float(p1 - p2 + above)


def mcnemar(y_true, y_pred_a, y_pred_b) -> Paired:
    """Model A against model B on the same photos.

    The exact two-sided McNemar test on the photos only one of them gets right (the others say
    nothing), and the interval on A - B.
    """
    a, b = _right(y_true, y_pred_a), _right(y_true, y_pred_b)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    both, neither = int(np.sum(a & b)), int(np.sum(~a & ~b))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    low, high = paired_difference_interval(both, a_only, b_only, neither)
    return Paired(a_only, b_only, a.size, float(p), (a_only - b_only) / a.size, low, high)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values for a family of tests.

    Reject where adjusted p < alpha, and the chance of any false "beats" in the family stays below
    alpha.
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    steps = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def _sentence(a: str, b: str, test: Paired, p_used: float, alpha: float, family: int) -> str:
    """One verdict sentence from a paired test (``p_used``: its p, Holm-adjusted in a family)."""
    photos = "photo" if test.a_only == 1 else "photos"
    counts = f"{test.a_only} {photos} only {a} gets right, {test.b_only} only {b}"
    interval = f"{a} - {b} = {test.difference:+.1%} (95% CI {test.low:+.1%} to {test.high:+.1%})"
    p_text = f"exact McNemar p = {test.p_value:.3g}" + (
        f", Holm-adjusted for {family} tests {p_used:.3g}" if family > 1 else ""
    )
    if p_used < alpha:
        winner, loser = (a, b) if test.a_only > test.b_only else (b, a)
        return f"{winner} beats {loser} on these {test.n} photos ({counts}; {p_text}; {interval})."
    if test.low > 0 or test.high < 0:  # the exact test and the interval disagree at the margin
        return (
            f"{a} and {b} cannot be told apart on these {test.n} photos ({counts}; {p_text}): "
            f"{interval}; the interval leans to one side, but the exact test does not reach "
            f"p < {alpha:g}: more photos would decide."
        )
    return (
        f"{a} and {b} cannot be told apart on these {test.n} photos ({counts}; {p_text}): "
        f"{interval}, so a true difference beyond that interval is unlikely, and one inside it "
        "could not be seen."
    )


def verdict(y_true, y_pred_a, y_pred_b, a: str = "A", b: str = "B", alpha: float = 0.05) -> str:
    """One sentence computed from the predictions:

    A beats B, or the test cannot tell them apart, with the counts it rests on and the interval on
    the difference.
    """
    test = mcnemar(y_true, y_pred_a, y_pred_b)
    return _sentence(a, b, test, test.p_value, alpha, 1)


def verdicts(y_true, predictions: dict, baseline: str, alpha: float = 0.05) -> list[str]:
    """One verdict per model against ``baseline``, judged as one family of tests.

    ``predictions``: name -> predicted classes. Holm's correction accounts for the number of
    comparisons made.
    """
    others = [name for name in predictions if name != baseline]
    tests = [mcnemar(y_true, predictions[name], predictions[baseline]) for name in others]
    adjusted = holm([t.p_value for t in tests])
    return [
        _sentence(name, baseline, test, p, alpha, len(others))
        for name, test, p in zip(others, tests, adjusted)
    ]


def compare(y_true, predictions: dict, baseline: str | None = None):
    """A table of the models' accuracies and, against ``baseline``, their paired comparisons.

    ``predictions``: name -> predicted classes, the same photos in the same order. One row per
    model: accuracy with its 95% interval and, against ``baseline``, the photos only it or only the
    baseline gets right, the difference with its interval, McNemar's p and Holm's adjustment over
    the table's comparisons. Accuracies in percent.
    """
    import pandas as pd

    others = [name for name in predictions if baseline is not None and name != baseline]
    tests = {name: mcnemar(y_true, predictions[name], predictions[baseline]) for name in others}
    adjusted = dict(zip(others, holm([t.p_value for t in tests.values()]))) if others else {}
    rows = {}
    for name, y_pred in predictions.items():
        acc = accuracy(y_true, y_pred)
        row = {
            "accuracy %": round(100 * acc.value, 1),
            "95% CI": f"{acc.low:.1%}-{acc.high:.1%}",
            "n": acc.n,
        }
        if others:
            test = tests.get(name)
            row.update(
                {
                    "only this right": test.a_only if test else "",
                    "only baseline right": test.b_only if test else "",
                    "difference %": round(100 * test.difference, 1) if test else "",
                    "difference 95% CI": f"{test.low:+.1%} to {test.high:+.1%}" if test else "",
                    "McNemar p": round(test.p_value, 4) if test else "",
                    "Holm p": round(float(adjusted[name]), 4) if test else "",
                }
            )
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
