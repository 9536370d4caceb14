"""Sweep: notebook 05's fine-tuning recipe, chosen on validation photos of splits other than 42.

For each split and recipe: notebook 04's head (``tl.train_head``), then the base unfrozen from a
block (``tl.unfreeze_from``, BatchNorm frozen), Adam with a cosine decay, the course's
augmentation, batches of 16, at most ``--epochs`` epochs, the best epoch on validation restored.
Records the validation accuracy of the head and of the fine-tuned model (which choose), the test
accuracy (which only reports), seconds and peak memory.

    python benchmarks/sweep_finetune.py --seeds 1 2 3 --recipes 0:1e-4 10:1e-4 0:3e-5
"""

import argparse
import resource
import time

import common

import tlcourse as tl

tl.quiet_tensorflow()


def run(seed: int, block: int, learning_rate: float, epochs: int) -> dict:
    import keras

    splits = common.split(seed)

    def folder(path, shuffle):
        return keras.utils.image_dataset_from_directory(
            path, image_size=(224, 224), batch_size=16, shuffle=shuffle, seed=seed, verbose=False
        )

    train, val, test = (
        folder(splits.train_dir, True),
        folder(splits.val_dir, False),
        folder(splits.test_dir, False),
    )
    augment = tl.augmentation(seed)
    train = train.map(lambda images, labels: (augment(images, training=True), labels))

    model = tl.train_head(splits, seed=seed)
    y_val, head_val = tl.predictions(model, val)
    tl.unfreeze_from(tl.find_base(model), block)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=epochs * len(train)
    )
    model.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=4, restore_best_weights=True
    )
    start = time.perf_counter()
    model.fit(train, validation_data=val, epochs=epochs, callbacks=[stop], verbose=0)
    seconds = time.perf_counter() - start
    _, tuned_val = tl.predictions(model, val)
    y_test, tuned_test = tl.predictions(model, test)
    return {
        "seed": seed,
        "block": block,
        "learning_rate": learning_rate,
        "epochs": epochs,
        "best_epoch": stop.best_epoch + 1,
        "head_val_accuracy": tl.accuracy(y_val, head_val.argmax(axis=1)).value,
        "val_accuracy": tl.accuracy(y_val, tuned_val.argmax(axis=1)).value,
        "test_accuracy": tl.accuracy(y_test, tuned_test.argmax(axis=1)).value,
        "seconds": round(seconds, 1),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=["0:1e-4", "10:1e-4", "0:3e-5"],
        help="BLOCK:LEARNING_RATE, unfrozen from that block",
    )
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    for seed in args.seeds:
        for recipe in args.recipes:
            block, learning_rate = recipe.split(":")
            record = run(seed, int(block), float(learning_rate), args.epochs)
            common.append("finetune_runs.jsonl", record)
            print(record, flush=True)
    columns = ["head_val_accuracy", "val_accuracy", "test_accuracy", "seconds"]
    common.report("finetune_runs.jsonl", ["block", "learning_rate", "epochs"], columns)


if __name__ == "__main__":
    main()
