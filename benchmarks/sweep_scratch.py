"""Sweep: notebook 03's network trained from scratch, by width and resolution (issue 21).

Each configuration of MobileNet (width multiplier ``alpha``, photos at ``size`` pixels) is trained
with the course's recipe (``tl.train_from_scratch``: augmentation, Adam 1e-3, the learning rate
cut on a validation plateau, stopped when the validation loss stops improving, the best epoch
restored) on splits other than the course's own (seed 42), and judged on their validation photos
only. Prints and records per run: epochs, seconds, best validation accuracy, training accuracy
(photos without augmentation), the stop reason.

    python benchmarks/sweep_scratch.py --seeds 1 2 --configs 1.0:128 1.0:96 0.5:128 0.25:128
"""

import argparse
import time

import common

import tlcourse as tl

tl.quiet_tensorflow()  # before Keras is imported: no C++ start-up lines


def run(seed: int, alpha: float, size: int, max_epochs: int, patience: int) -> dict:
    import keras

    splits = common.split(seed)

    def folder(path, shuffle):
        return keras.utils.image_dataset_from_directory(
            path, image_size=(size, size), batch_size=32, shuffle=shuffle, seed=seed, verbose=False
        ).cache()

    train, train_plain, val = (
        folder(splits.train_dir, True),
        folder(splits.train_dir, False),
        folder(splits.val_dir, False),
    )
    start = time.perf_counter()
    model, history, reason = tl.train_from_scratch(
        train,
        validation_data=val,
        num_classes=len(splits.class_names),
        img_size=size,
        alpha=alpha,
        max_epochs=max_epochs,
        patience=patience,
        seed=seed,
    )
    seconds = time.perf_counter() - start
    y_train, p_train = tl.predictions(model, train_plain)
    y_val, p_val = tl.predictions(model, val)
    return {
        "seed": seed,
        "alpha": alpha,
        "size": size,
        "patience": patience,
        "epochs": len(history.epoch),
        "seconds": round(seconds, 1),
        "val_accuracy": tl.accuracy(y_val, p_val.argmax(axis=1)).value,
        "train_accuracy": tl.accuracy(y_train, p_train.argmax(axis=1)).value,
        "stop_reason": reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--configs", nargs="+", default=["1.0:128", "1.0:96", "0.5:128", "0.25:128"]
    )
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=8)
    args = parser.parse_args()
    for seed in args.seeds:
        for config in args.configs:
            alpha, size = config.split(":")
            record = run(seed, float(alpha), int(size), args.max_epochs, args.patience)
            common.append("scratch_runs.jsonl", record)
            print(record, flush=True)
    common.report(
        "scratch_runs.jsonl",
        ["alpha", "size", "patience"],
        ["val_accuracy", "train_accuracy", "epochs", "seconds"],
    )


if __name__ == "__main__":
    main()
