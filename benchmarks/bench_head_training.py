"""Benchmark: training a new head end to end (frozen base) vs on cached features.

Prints
- feature-extraction throughput of the frozen MobileNet base (photos per second);
- time per head-training epoch, end to end (augmented photos through the frozen
  base) vs on cached features, and their ratio;
- time to reach 85% validation accuracy both ways (cached: including the
  one-off feature extraction).

    make bench            # full data (the course's split), TLCOURSE_FAST=1 for a quick check

Numbers depend on the machine and on what else runs on it; nothing asserts them.
"""

from __future__ import annotations

import time

import numpy as np

import tlcourse as tl

tl.quiet_tensorflow()  # before Keras is imported: no C++ start-up lines

import keras  # noqa: E402

TARGET = 0.85
MAX_END_TO_END_EPOCHS = tl.pick(full=10, fast=2)
MAX_CACHED_EPOCHS = tl.pick(full=100, fast=20)


class EpochClock(keras.callbacks.Callback):
    """Wall time at the end of each epoch (validation included) and the validation accuracy."""

    def __init__(self, start: float, target: float):
        super().__init__()
        self.start, self.target = start, target
        self.times, self.val_accuracy, self.reached_at = [], [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)
        self.val_accuracy.append(float(logs["val_accuracy"]))
        if self.reached_at is None and logs["val_accuracy"] >= self.target:
            self.reached_at = time.perf_counter() - self.start
            self.model.stop_training = True


def head(num_classes):
    return [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(num_classes, activation="softmax"),
    ]


def main():
    splits = tl.flowers_splits()

    def load(folder, shuffle):
        return keras.utils.image_dataset_from_directory(
            folder, image_size=(224, 224), batch_size=32, shuffle=shuffle, seed=42, verbose=False
        )

    train, train_fixed, val = (
        load(splits.train_dir, True),
        load(splits.train_dir, False),
        load(splits.val_dir, False),
    )
    n_classes = len(train.class_names)
    print(
        f"flowers: {splits.sizes['train']} training, {splits.sizes['val']} validation photos; "
        f"target {TARGET:.0%} validation accuracy"
    )

    base = keras.applications.MobileNet(
        weights="imagenet", include_top=False, input_shape=(224, 224, 3)
    )
    base.trainable = False
    rescale = keras.layers.Rescaling(1 / 127.5, offset=-1)

    # 1. feature extraction throughput (after one warm-up batch)
    extractor = keras.Sequential(
        [keras.Input((224, 224, 3)), rescale, base, keras.layers.GlobalAveragePooling2D()]
    )
    extractor.predict(val.take(1), verbose=0)
    start = time.perf_counter()
    y_train, X_train = tl.predictions(extractor, train_fixed)
    y_val, X_val = tl.predictions(extractor, val)
    extract_s = time.perf_counter() - start
    n = len(X_train) + len(X_val)
    print(f"\nfeature extraction: {n} photos in {extract_s:.1f} s = {n / extract_s:.1f} photos/s")

    # 2. end to end: augmented photos through the frozen base, every epoch
    tl.set_seed(42)
    inputs = keras.Input((224, 224, 3))
    x = tl.augmentation(seed=42)(inputs)
    x = base(rescale(x), training=False)
    for layer in head(n_classes):
        x = layer(x)
    model = keras.Model(inputs, x)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    clock_e2e = EpochClock(time.perf_counter(), TARGET)
    model.fit(
        train, validation_data=val, epochs=MAX_END_TO_END_EPOCHS, callbacks=[clock_e2e], verbose=0
    )

    # 3. cached features: a head on the 1,024-d vectors
    tl.set_seed(42)
    cached = keras.Sequential([keras.Input((1024,))] + head(n_classes)[1:])
    cached.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    clock_cached = EpochClock(time.perf_counter() - extract_s, TARGET)  # the extraction counts
    cached.fit(
        X_train,
        y_train,
        validation_data=(X_val, y_val),
        batch_size=32,
        epochs=MAX_CACHED_EPOCHS,
        callbacks=[clock_cached],
        verbose=0,
    )

    e2e_epoch = float(np.median(clock_e2e.times))
    cached_epoch = float(np.median(clock_cached.times[1:] or clock_cached.times))
    print("\nhead training, median time per epoch (validation included):")
    print(f"  end to end (frozen base, augmented): {e2e_epoch:8.2f} s")
    print(f"  on cached features:                  {cached_epoch:8.3f} s")
    print(f"  ratio:                               {e2e_epoch / cached_epoch:8.0f}x")
    print(f"\ntime to reach {TARGET:.0%} validation accuracy:")
    for name, clock in (("end to end", clock_e2e), ("cached (incl. extraction)", clock_cached)):
        if clock.reached_at is None:
            print(
                f"  {name:26s} not reached in {len(clock.times)} epochs "
                f"(best {max(clock.val_accuracy):.1%})"
            )
        else:
            epochs = next(i for i, a in enumerate(clock.val_accuracy) if a >= TARGET) + 1
            print(f"  {name:26s} {clock.reached_at:7.1f} s ({epochs} epochs)")


if __name__ == "__main__":
    main()
