"""Sweep: notebook 04's head against ``LogisticRegression`` on the same frozen features.

For each split other than the course's own: ``tl.train_head`` (a softmax ``Dense`` layer with the
L2 penalty of ``LogisticRegression(C)``, trained on cached features of each photo, its mirror and
``copies`` augmented copies) and scikit-learn's ``LogisticRegression(C)`` on the features of the
photos alone. Records validation accuracy (chooses) and test accuracy (reports) of both.

    python benchmarks/sweep_head.py --seeds 1 2 3 --copies 0 4 --C 1
"""

import argparse

import common
import numpy as np

import tlcourse as tl

tl.quiet_tensorflow()


def run(seed: int, copies: int, C: float) -> dict:
    import keras
    from sklearn.linear_model import LogisticRegression

    splits = common.split(seed)
    model = tl.train_head(splits, copies=copies, C=C, seed=seed)
    extractor = keras.Model(model.input, model.layers[-2].output)  # photos -> pooled features
    record = {"seed": seed, "copies": copies, "C": C}
    features = {}
    for part, path in (
        ("train", splits.train_dir),
        ("val", splits.val_dir),
        ("test", splits.test_dir),
    ):
        folder = keras.utils.image_dataset_from_directory(
            path, image_size=(224, 224), batch_size=32, shuffle=False, verbose=False
        )
        labels, head_probs = tl.predictions(model, folder)
        _, X = tl.predictions(extractor, folder)
        features[part] = (X, labels)
        record[f"head_{part}_accuracy"] = tl.accuracy(labels, head_probs.argmax(axis=1)).value
    logreg = LogisticRegression(C=C, max_iter=2000).fit(*features["train"])
    for part in ("val", "test"):
        X, labels = features[part]
        record[f"logreg_{part}_accuracy"] = tl.accuracy(labels, logreg.predict(X)).value
    record["head_minus_logreg_test"] = record["head_test_accuracy"] - record["logreg_test_accuracy"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--copies", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--C", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    for seed in args.seeds:
        for copies in args.copies:
            for C in args.C:
                record = run(seed, copies, C)
                common.append("head_runs.jsonl", record)
                print(
                    {k: np.round(v, 4) if isinstance(v, float) else v for k, v in record.items()},
                    flush=True,
                )
    columns = [
        "head_val_accuracy",
        "logreg_val_accuracy",
        "head_test_accuracy",
        "logreg_test_accuracy",
    ]
    common.report("head_runs.jsonl", ["copies", "C"], columns)


if __name__ == "__main__":
    main()
