"""Evidence on small test sets: accuracies with their Wilson 95% intervals, and "A beats B" decided
by an exact McNemar test on the photos where they disagree (both :func:`scipy.stats.binomtest`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest


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


def accuracy(correct, confidence: float = 0.95) -> Accuracy:
    """Accuracy of a vector of right (True) / wrong (False) answers, with its Wilson interval."""
    correct = np.asarray(correct, dtype=bool).ravel()
    if correct.size == 0:
        raise ValueError("accuracy of no predictions")
    k, n = int(correct.sum()), int(correct.size)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Accuracy(k, n, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Paired:
    """Two models on the same photos: how many only A gets right, only B, and McNemar's p."""
    a_only: int
    b_only: int
    p_value: float


def mcnemar(correct_a, correct_b) -> Paired:
    """Exact two-sided McNemar test on the photos only A, or only B, gets right (the others say nothing)."""
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired answers must be on the same photos: {a.size} vs {b.size}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return Paired(a_only, b_only, float(p))


def verdict(name_a: str, correct_a, name_b: str, correct_b, alpha: float = 0.05) -> str:
    """One sentence computed from the answers: A beats B on these photos, or the test cannot tell."""
    t = mcnemar(correct_a, correct_b)
    acc_a, acc_b = accuracy(correct_a), accuracy(correct_b)
    photos = "photo" if t.a_only == 1 else "photos"
    counts = (f"{t.a_only} {photos} only {name_a} gets right, {t.b_only} only {name_b}; "
              f"exact McNemar p = {t.p_value:.3g}")
    if t.p_value < alpha:
        winner, loser = (name_a, name_b) if t.a_only > t.b_only else (name_b, name_a)
        return f"{winner} beats {loser} ({counts} < {alpha})."
    return (f"{name_a} ({acc_a.value:.1%}) and {name_b} ({acc_b.value:.1%}) cannot be told "
            f"apart on these {acc_a.n} photos ({counts}).")


def compare(answers: dict, baseline: str | None = None):
    """A pandas table: each model's accuracy with its 95% interval and, against ``baseline``,
    the photos only it / only the baseline gets right and McNemar's p.

    ``answers``: model name -> right/wrong per test photo (the same photos, same order)."""
    import pandas as pd

    rows = {}
    for name, correct in answers.items():
        acc = accuracy(correct)
        row = {"accuracy": acc.value, "95% CI low": acc.low, "95% CI high": acc.high, "n": acc.n}
        if baseline is not None and name != baseline:
            t = mcnemar(correct, answers[baseline])
            row.update({"only this right": t.a_only, "only baseline right": t.b_only,
                        "McNemar p": t.p_value})
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.style.format({"accuracy": "{:.1%}", "95% CI low": "{:.1%}", "95% CI high": "{:.1%}",
                               "McNemar p": "{:.3g}", "only this right": "{:.0f}",
                               "only baseline right": "{:.0f}"}, na_rep="")
