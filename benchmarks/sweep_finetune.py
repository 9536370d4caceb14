"""Sweep: fine-tuning MobileNet on the flowers, starting from the trained head (notebook 05).

Every run starts as the lecture says: the new head is trained first on the frozen base (here:
recipe ``--head`` of sweep_head.py, on the split's cached features, a few seconds), then blocks
``block``..13 of MobileNet V1 (block 0 = stem, 1..13 the depthwise-separable blocks) are
unfrozen, BatchNorm layers kept frozen (a trainable BatchNorm layer trains in Keras 3 even under
``base(x, training=False)``), and base and head train together with early stopping on
validation accuracy (``keras.callbacks.EarlyStopping(restore_best_weights=True)``). The model
is the one notebook 05 saves: raw RGB 0-255 -> augmentation layers -> Rescaling(1/127.5, -1) ->
MobileNet -> global average pooling -> Dense softmax.

Each run is a fresh Python process, so its peak resident memory (``getrusage``, what a notebook
kernel doing the same would need) and its time are its own. A run scores the head (before
fine-tuning) and the fine-tuned model on the split's validation and test photos, plain and with
test-time flip averaging, and logs per-photo correctness for paired tests.

    python benchmarks/sweep_finetune.py probe --block 0 6 10 --batch 16 32   # step time, memory
    python benchmarks/sweep_finetune.py run --split 42 --block 10 --lr 1e-4   # one run
    python benchmarks/sweep_finetune.py sweep --plan coarse --splits 42       # a planned sweep
    python benchmarks/sweep_finetune.py report                               # table + paired tests

Raw results: build/bench/finetune_runs.jsonl, build/bench/finetune_summary.csv,
build/bench/probe.jsonl. Needs the features cached by ``sweep_head.py features``.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import sweep_common as common  # noqa: E402

N_BLOCKS = 14
_STEM = re.compile(r"^conv1(_bn|_relu|_pad)?$")
_BLOCK = re.compile(r"^conv_(?:pad|dw|pw)_(\d+)(?:_bn|_relu)?$")

DEFAULTS = dict(block=10, batch=32, opt="adam", lr=1e-5, schedule="constant", epochs=10,
                patience=4, smoothing=0.0, aug="course", head="dense_C1_all", run_seed=0,
                time_limit=0.0, warmup=0)


def block_of(name):
    if _STEM.match(name):
        return 0
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else None


def unfreeze_from(base, block):
    """Blocks block..13 trainable, earlier ones and every BatchNorm frozen; trainable count."""
    import keras

    base.trainable = True
    for layer in base.layers:
        b = block_of(layer.name)
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = b is not None and b >= block and not is_bn
    return int(sum(np.prod(w.shape) for w in base.trainable_weights))


def build_model(n_classes, aug, seed, kernel=None, bias=None):
    import keras

    base = common.mobilenet_base()
    base.trainable = False
    inputs = keras.Input(common.IMAGE_SIZE + (3,))
    x = inputs
    for layer in common.augmentation_layers(aug, seed):
        x = layer(x)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(n_classes, activation="softmax")
    outputs = dense(x)
    model = keras.Model(inputs, outputs, name="mobilenet_fine_tuned")
    if kernel is not None:
        dense.set_weights([kernel, bias])
    return model, base


def make_optimizer(cfg, steps_per_epoch):
    import keras

    lr = cfg["lr"]
    if cfg["schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            cfg["lr"], decay_steps=cfg["epochs"] * steps_per_epoch,
            warmup_target=None, warmup_steps=0)
    elif cfg["schedule"] == "warmcos":  # linear warm-up over `warmup` epochs, then cosine
        w = max(1, cfg["warmup"]) * steps_per_epoch
        lr = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=cfg["epochs"] * steps_per_epoch - w, warmup_target=cfg["lr"],
            warmup_steps=w)
    elif cfg["schedule"] != "constant":
        raise ValueError(cfg["schedule"])
    if cfg["opt"] == "adam":
        return keras.optimizers.Adam(lr)
    if cfg["opt"] == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    raise ValueError(cfg["opt"])


def train_ds(x, y, n_classes, batch, seed):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(n_classes, dtype=np.float32)[y]))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32), b)).prefetch(2)


def eval_ds(x, y, n_classes, batch=32):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(n_classes, dtype=np.float32)[y])).batch(batch)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32), b))


def predict(model, x, batch=32):
    return model.predict(x.astype(np.float32), batch_size=batch, verbose=0)


def score_model(model, data):
    out = {}
    for part in ("val", "test"):
        x, y, _ = data[part]
        p = predict(model, x)
        pf = predict(model, x[:, :, ::-1, :])
        out[f"{part}_correct"] = (p.argmax(1) == y).astype(int).tolist()
        out[f"{part}_tta_correct"] = (((p + pf) / 2).argmax(1) == y).astype(int).tolist()
        out[f"{part}_acc"] = float(np.mean(out[f"{part}_correct"]))
        out[f"{part}_tta_acc"] = float(np.mean(out[f"{part}_tta_correct"]))
    return out


class Clock:
    """Keras callback: epoch times, and a wall-time limit on training (0 = none)."""

    def __new__(cls, *a, **k):
        import keras

        class _Clock(keras.callbacks.Callback):
            def __init__(self, limit):
                super().__init__()
                self.limit, self.times = limit, []

            def on_train_begin(self, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_begin(self, epoch, logs=None):
                self.te = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.te)
                if self.limit and time.perf_counter() - self.t0 > self.limit:
                    self.model.stop_training = True

        return _Clock(*a, **k)


class TestEachEpoch:
    """Keras callback: per-photo test correctness after every epoch (for post-hoc stopping rules).

    Costs one forward pass over the test photos per epoch; the test photos never influence
    training or the restored epoch.
    """

    def __new__(cls, *a, **k):
        import keras

        class _TestEachEpoch(keras.callbacks.Callback):
            def __init__(self, x, y):
                super().__init__()
                self.x, self.y, self.correct, self.seconds = x, y, [], 0.0

            def on_epoch_end(self, epoch, logs=None):
                t = time.perf_counter()
                p = predict(self.model, self.x)
                self.correct.append((p.argmax(1) == self.y).astype(int).tolist())
                self.seconds += time.perf_counter() - t

        return _TestEachEpoch(*a, **k)


def emulate_early_stopping(val_history, patience):
    """(stop epoch, restored epoch), 1-based, of EarlyStopping(val_accuracy, patience, restore)."""
    best, best_epoch, wait = -1.0, 0, 0
    for i, v in enumerate(val_history):
        if v > best:
            best, best_epoch, wait = v, i, 0
        else:
            wait += 1
            if wait >= patience:
                return i + 1, best_epoch + 1
    return len(val_history), best_epoch + 1


def cmd_run(args):
    """One fine-tuning run in this process; appends a record to finetune_runs.jsonl."""
    import keras

    import sweep_head

    cfg = {k: getattr(args, k) for k in DEFAULTS}
    cfg["split"] = args.split
    t_start = time.perf_counter()
    keras.utils.set_random_seed(cfg["run_seed"])
    data = common.load_split(args.splits_root, args.split)
    n_classes = len(data["class_names"])
    feats = sweep_head.load_features(args.out, args.split)
    kernel, bias, head_info = sweep_head.train_head(feats, cfg["head"], seed=cfg["run_seed"])
    del feats
    model, base = build_model(n_classes, cfg["aug"], seed=cfg["run_seed"], kernel=kernel, bias=bias)
    head_scores = score_model(model, data)
    rss_before = common.peak_rss_mib()
    n_trainable = unfreeze_from(base, cfg["block"])
    xtr, ytr, _ = data["train"]
    steps = int(np.ceil(len(xtr) / cfg["batch"]))
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg["smoothing"])
    model.compile(optimizer=make_optimizer(cfg, steps), loss=loss, metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=cfg["patience"],
                                         restore_best_weights=True)
    clock = Clock(cfg["time_limit"])
    test_each = TestEachEpoch(*data["test"][:2]) if args.test_each_epoch else None
    cpu0, load0 = common.cpu_seconds(), common.load_average()
    t0 = time.perf_counter()
    hist = model.fit(train_ds(xtr, ytr, n_classes, cfg["batch"], cfg["run_seed"]),
                     validation_data=eval_ds(*data["val"][:2], n_classes),
                     epochs=cfg["epochs"],
                     callbacks=[stop, clock] + ([test_each] if test_each else []), verbose=0)
    train_s = time.perf_counter() - t0
    train_cpu_s = common.cpu_seconds() - cpu0
    va = hist.history["val_accuracy"]
    ft_scores = score_model(model, data)
    if args.save:
        model.save(args.save)
    rec = {**cfg, "trainable_base_params": n_trainable, "train_s": train_s,
           "train_cpu_s": train_cpu_s, "load_avg_before": load0, "load_avg_after": common.load_average(),
           "epochs_run": len(va), "best_epoch": int(np.argmax(va)) + 1,
           "epoch_s": clock.times, "val_acc_history": [float(v) for v in va],
           "loss_history": [float(v) for v in hist.history["loss"]],
           "peak_rss_mib": common.peak_rss_mib(), "rss_before_fit_mib": rss_before,
           "total_s": time.perf_counter() - t_start,
           **{"head_" + k: v for k, v in head_scores.items()}, **ft_scores}
    if test_each:
        rec["test_correct_by_epoch"] = test_each.correct
        rec["test_acc_by_epoch"] = [float(np.mean(c)) for c in test_each.correct]
        rec["test_each_epoch_s"] = test_each.seconds  # included in train_s
    common.append_jsonl(Path(args.out) / "finetune_runs.jsonl", rec)
    print(json.dumps({k: v for k, v in rec.items() if not isinstance(v, list)}), flush=True)


# ----------------------------------------------------------------------------- notebook-like

def cmd_nb_head(args):
    """Save a head model as notebook 04 would: raw RGB 0-255 -> Rescaling -> MobileNet -> GAP -> Dense."""
    import keras

    import sweep_head

    feats = sweep_head.load_features(args.out, args.split)
    kernel, bias, info = sweep_head.train_head(feats, args.head, seed=0)
    base = common.mobilenet_base()
    base.trainable = False
    inputs = keras.Input(common.IMAGE_SIZE + (3,))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(len(feats["class_names"]), activation="softmax")
    model = keras.Model(inputs, dense(x), name="mobilenet_new_head")
    dense.set_weights([kernel, bias])
    Path(args.save).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.save)
    print(json.dumps({"head": args.head, "split": args.split, "saved": args.save, **info}))


def cmd_nb_finetune(args):
    """Fine-tune a saved head model the way notebook 05 would, and measure it.

    Photos stream from the split folders (image_dataset_from_directory, shuffled each epoch,
    augmentation mapped over the batches), the model is loaded from the head's file, blocks
    ``--block``..13 unfrozen with BatchNorm frozen, Adam with cosine decay, early stopping on
    validation accuracy with the best epoch restored, then saved with ``model.save``.
    """
    import keras
    import tensorflow as tf

    cfg = {k: getattr(args, k) for k in DEFAULTS}
    keras.utils.set_random_seed(cfg["run_seed"])
    root = common.split_dir(args.splits_root, args.split)
    label_mode = "categorical" if cfg["smoothing"] else "int"

    def folder(part, shuffle):
        return keras.utils.image_dataset_from_directory(
            str(root / part), image_size=common.IMAGE_SIZE, batch_size=cfg["batch"],
            label_mode=label_mode, shuffle=shuffle, seed=cfg["run_seed"], verbose=False)

    train, val = folder("train", True), folder("val", False)
    augment = keras.Sequential(common.augmentation_layers(cfg["aug"], cfg["run_seed"]))
    train = train.map(lambda x, y: (augment(x, training=True), y),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    model = keras.models.load_model(args.head_model)
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    n_trainable = unfreeze_from(base, cfg["block"])
    steps = int(train.cardinality().numpy())
    loss = (keras.losses.CategoricalCrossentropy(label_smoothing=cfg["smoothing"])
            if cfg["smoothing"] else keras.losses.SparseCategoricalCrossentropy())
    model.compile(optimizer=make_optimizer(cfg, steps), loss=loss, metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=cfg["patience"],
                                         restore_best_weights=True)
    rss0 = common.peak_rss_mib()
    cpu0, load0, t0 = common.cpu_seconds(), common.load_average(), time.perf_counter()
    hist = model.fit(train, validation_data=val, epochs=cfg["epochs"], callbacks=[stop],
                     verbose=2)
    train_s, train_cpu_s = time.perf_counter() - t0, common.cpu_seconds() - cpu0
    test = folder("test", False)
    test_acc = float(model.evaluate(test, verbose=0)[1])
    model.save(args.save)
    rec = {**cfg, "split": args.split, "trainable_base_params": n_trainable, "train_s": train_s,
           "train_cpu_s": train_cpu_s, "load_avg_before": load0,
           "load_avg_after": common.load_average(), "epochs_run": len(hist.history["loss"]),
           "val_acc_history": [float(v) for v in hist.history["val_accuracy"]],
           "test_acc": test_acc, "peak_rss_before_fit_mib": rss0,
           "peak_rss_mib": common.peak_rss_mib(), "saved": args.save}
    common.append_jsonl(Path(args.out) / "notebook_like.jsonl", rec)
    print(json.dumps(rec))


def cmd_nb_load(args):
    """In a fresh process with nothing but Keras: load a saved model and score the test photos."""
    import keras

    model = keras.models.load_model(args.model)
    x, y, _, _ = common.load_folder(common.split_dir(args.splits_root, args.split) / "test")
    acc = float(np.mean(predict(model, x).argmax(1) == y))
    print(json.dumps({"model": args.model, "loaded_with": "keras.models.load_model",
                      "test_acc": acc, "peak_rss_mib": common.peak_rss_mib()}))


def cmd_notebook(args):
    """Head model file -> fine-tune as notebook 05 would (own process, measured) -> plain load."""
    models = Path(args.out) / "models"
    head_path = str(models / f"head_seed{args.split}.keras")
    ft_path = str(models / f"fine_tuned_seed{args.split}.keras")
    common_argv = ["--splits-root", args.splits_root, "--out", args.out]
    rc, s = child(common_argv + ["nb-head", "--split", str(args.split), "--head", args.head,
                                 "--save", head_path])
    if rc:
        sys.exit(f"head failed ({rc})")
    argv = common_argv + ["nb-finetune", "--split", str(args.split), "--head-model", head_path,
                          "--save", ft_path]
    for k in DEFAULTS:
        argv += ["--" + k.replace("_", "-"), str(getattr(args, k))]
    rc, s = child(argv)
    if rc:
        sys.exit(f"fine-tuning failed ({rc})")
    for path in (head_path, ft_path):
        rc, s = child(common_argv + ["nb-load", "--split", str(args.split), "--model", path])
        if rc:
            sys.exit(f"{path} does not load with plain keras.models.load_model ({rc})")


def cmd_probe_one(args):
    """Time a few training steps for one (block, batch) in this process; peak memory."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    data = common.load_split(args.splits_root, args.split)
    xtr, ytr, _ = data["train"]
    n_classes = len(data["class_names"])
    block, batch = args.block[0], args.batch[0]
    model, base = build_model(n_classes, args.aug, seed=0)
    n_trainable = unfreeze_from(base, block)
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    ds = train_ds(xtr, ytr, n_classes, batch, 0).repeat()
    it = iter(ds)
    times, cpus = [], []
    for i in range(args.steps + 2):
        xb, yb = next(it)
        t, c = time.perf_counter(), common.cpu_seconds()
        model.train_on_batch(xb, yb)
        times.append(time.perf_counter() - t)
        cpus.append(common.cpu_seconds() - c)
    step = float(np.median(times[2:]))
    rec = {"block": block, "batch": batch, "aug": args.aug, "trainable_base_params": n_trainable,
           "step_s": step, "ms_per_photo": 1000 * step / batch,
           "epoch_s_est": step * np.ceil(len(xtr) / batch), "first_step_s": times[0],
           "step_cpu_s": float(np.median(cpus[2:])), "load_avg": common.load_average(),
           "peak_rss_mib": common.peak_rss_mib()}
    common.append_jsonl(Path(args.out) / "probe.jsonl", rec)
    print(json.dumps(rec), flush=True)
    del tf


def child(argv, log=None):
    """Run this script with argv in a fresh process; return its exit code."""
    cmd = [sys.executable, str(Path(__file__).resolve())] + argv
    t = time.perf_counter()
    out = open(log, "a") if log else None
    rc = subprocess.call(cmd, stdout=out or None, stderr=subprocess.STDOUT if out else None)
    if out:
        out.close()
    return rc, time.perf_counter() - t


def cmd_probe(args):
    for block in args.block:
        for batch in args.batch:
            rc, s = child(["--splits-root", args.splits_root, "--out", args.out, "probe-one",
                           "--split", str(args.split), "--block", str(block), "--batch", str(batch),
                           "--steps", str(args.steps), "--aug", args.aug])
            if rc:
                print(f"probe block {block} batch {batch} failed (exit {rc})")
    rows = common.read_jsonl(Path(args.out) / "probe.jsonl")
    print(f"\n{'block':>5s} {'batch':>5s} {'aug':>8s} {'step s':>7s} {'ms/photo':>8s} "
          f"{'epoch s (800)':>13s} {'peak RSS MiB':>12s}")
    for r in rows:
        print(f"{r['block']:5d} {r['batch']:5d} {r['aug']:>8s} {r['step_s']:7.2f} "
              f"{r['ms_per_photo']:8.1f} {r['epoch_s_est']:13.1f} {r['peak_rss_mib']:12.0f}")


# ----------------------------------------------------------------------------- plans

def _cfg(**kw):
    c = dict(DEFAULTS)
    c.update(kw)
    return c


PLANS = {
    # one split, one factor at a time around a reference, budget <= ~6 min each
    "coarse": [
        _cfg(block=10, batch=32, lr=1e-4, schedule="cosine", epochs=10),
        _cfg(block=0, batch=16, lr=1e-4, schedule="cosine", epochs=8),
        _cfg(block=0, batch=16, lr=3e-5, schedule="cosine", epochs=8),
        _cfg(block=10, batch=32, lr=1e-4, schedule="cosine", epochs=10, aug="flipzoom"),
        _cfg(block=0, batch=16, lr=1e-4, schedule="cosine", epochs=8, aug="flipzoom"),
        _cfg(block=10, batch=32, lr=1e-4, schedule="cosine", epochs=10, smoothing=0.1),
        _cfg(block=6, batch=32, lr=1e-4, schedule="cosine", epochs=10),
        _cfg(block=10, batch=32, lr=1e-5, epochs=10),                       # notebook 05 today
    ],
}


def cmd_sweep(args):
    if args.plan:
        plan = PLANS[args.plan]
    else:
        plan = [json.loads(s) for s in args.config]
        plan = [_cfg(**c) for c in plan]
    log = Path(args.out) / "finetune_runs.jsonl"
    for split in args.splits:
        for cfg in plan:
            key = {**cfg, "split": split}
            done = [r for r in common.read_jsonl(log)
                    if all(r.get(k) == v for k, v in key.items())]
            if done and not args.force:
                print(f"skip (done): {key}", flush=True)
                continue
            argv = ["--splits-root", args.splits_root, "--out", args.out, "run",
                    "--split", str(split)] + (["--test-each-epoch"] if args.test_each_epoch else [])
            for k, v in cfg.items():
                argv += ["--" + k.replace("_", "-"), str(v)]
            print(f"{time.strftime('%H:%M:%S')} run {key}", flush=True)
            rc, s = child(argv, log=args.child_log)
            print(f"{time.strftime('%H:%M:%S')}   exit {rc} after {s:.0f} s", flush=True)


# ----------------------------------------------------------------------------- report

RECIPE_KEYS = ("block", "batch", "opt", "lr", "schedule", "epochs", "patience", "smoothing", "aug",
               "head", "warmup", "time_limit")


def recipe_name(r):
    name = (f"b{r['block']} bs{r['batch']} {r['opt']} {r['lr']:g} {r['schedule']} "
            f"e{r['epochs']} p{r['patience']} {r['aug']}")
    if r["smoothing"]:
        name += f" ls{r['smoothing']:g}"
    if r.get("warmup"):
        name += f" w{r['warmup']}"
    if r["head"] != DEFAULTS["head"]:
        name += f" [{r['head']}]"
    return name


def cmd_report(args):
    rows = common.read_jsonl(Path(args.out) / "finetune_runs.jsonl")
    if not rows:
        sys.exit("no results yet")
    groups = {}
    for r in rows:
        groups.setdefault(recipe_name(r), []).append(r)
    summary = []
    print(f"\n{'recipe':52s} {'n':>2s} {'splits':10s} {'val':>11s} {'test':>11s} {'test tta':>11s} "
          f"{'head test':>11s} {'Δtest':>6s} {'train s':>7s} {'cpu s':>6s} {'ep':>4s} {'RSS MiB':>7s}")
    for name, rs in groups.items():
        row = {"recipe": name, "n": len(rs), "splits": " ".join(str(r["split"]) for r in rs)}
        for key in ("val_acc", "test_acc", "test_tta_acc", "val_tta_acc", "head_val_acc",
                    "head_test_acc", "head_test_tta_acc", "train_s", "train_cpu_s", "epochs_run",
                    "best_epoch", "peak_rss_mib"):
            row[key + "_mean"], row[key + "_sd"] = common.mean_sd(r[key] for r in rs)
        row["delta_test_mean"], row["delta_test_sd"] = common.mean_sd(
            r["test_acc"] - r["head_test_acc"] for r in rs)
        row["peak_rss_mib_max"] = max(r["peak_rss_mib"] for r in rs)
        row["train_s_max"] = max(r["train_s"] for r in rs)
        summary.append(row)

        def pct(k):
            return f"{100 * row[k + '_mean']:4.1f}±{100 * row[k + '_sd']:4.1f}"

        print(f"{name:52s} {row['n']:2d} {row['splits'][:10]:10s} {pct('val_acc')} {pct('test_acc')} "
              f"{pct('test_tta_acc')} {pct('head_test_acc')} {100 * row['delta_test_mean']:+6.1f} "
              f"{row['train_s_mean']:7.0f} {row['train_cpu_s_mean']:6.0f} {row['epochs_run_mean']:4.1f} "
              f"{row['peak_rss_mib_max']:7.0f}")
    common.write_csv(Path(args.out) / "finetune_summary.csv", summary)

    stopping_rules(rows)

    print("\npaired, fine-tuned vs its own starting head, same photos, pooled over the recipe's "
          "runs (a/b = fine-tuned right & head wrong / fine-tuned wrong & head right; exact "
          "McNemar p):")
    for name, rs in groups.items():
        for parts, label in ((("test",), "test"), (("val", "test"), "val+test")):
            for tta in ("", "_tta"):
                a = sum((r[p + tta + "_correct"] for r in rs for p in parts), [])
                b = sum((r["head_" + p + "_correct"] for r in rs for p in parts), [])
                n01, n10, pv = common.mcnemar(a, b)
                print(f"  {name:52s} {label:8s}{tta or '    '} n={len(a):4d} {np.mean(a):6.1%} vs "
                      f"{np.mean(b):6.1%} {n01:3d}/{n10:3d} p={pv:.4f}")


def stopping_rules(rows):
    """For runs logged with --test-each-epoch: test accuracy under other stopping rules."""
    rows = [r for r in rows if r.get("test_correct_by_epoch")
            and len(r["test_correct_by_epoch"]) == len(r["val_acc_history"])]
    if not rows:
        return
    print("\nstopping rules (runs with per-epoch test scores; the validation curve picks the "
          "epoch, the test photos only score it):")
    print(f"  {'recipe':52s} {'n':>2s} {'ES p2':>6s} {'ES p4':>6s} {'best val':>8s} "
          f"{'last':>6s} {'head':>6s}")
    groups = {}
    for r in rows:
        groups.setdefault(recipe_name(r), []).append(r)
    for name, rs in groups.items():
        acc = {k: [] for k in ("p2", "p4", "best", "last")}
        for r in rs:
            by_epoch = r["test_acc_by_epoch"]
            acc["p2"].append(by_epoch[emulate_early_stopping(r["val_acc_history"], 2)[1] - 1])
            acc["p4"].append(by_epoch[emulate_early_stopping(r["val_acc_history"], 4)[1] - 1])
            acc["best"].append(by_epoch[int(np.argmax(r["val_acc_history"]))])
            acc["last"].append(by_epoch[-1])
        head = np.mean([r["head_test_acc"] for r in rs])
        print(f"  {name:52s} {len(rs):2d} " + " ".join(
            f"{100 * np.mean(acc[k]):{w}.1f}" for k, w in (("p2", 6), ("p4", 6), ("best", 8),
                                                           ("last", 6)))
              + f" {100 * head:6.1f}")


def add_cfg_args(p):
    for k, v in DEFAULTS.items():
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)


def main(argv=None):
    p, sub = common.argument_parser(__doc__)

    r = sub.add_parser("run", help="one fine-tuning run in this process")
    r.add_argument("--split", type=int, default=42)
    r.add_argument("--save", help="save the fine-tuned model to this .keras path")
    r.add_argument("--test-each-epoch", action="store_true",
                   help="also log test correctness after every epoch (post-hoc stopping rules)")
    add_cfg_args(r)

    pr = sub.add_parser("probe", help="step time and peak memory per (block, batch), "
                                      "each in a fresh process")
    pr.add_argument("--split", type=int, default=42)
    pr.add_argument("--block", type=int, nargs="+", default=[0, 6, 10])
    pr.add_argument("--batch", type=int, nargs="+", default=[16, 32])
    pr.add_argument("--steps", type=int, default=6)
    pr.add_argument("--aug", default="course")
    po = sub.add_parser("probe-one", help="(internal) one probe in this process")
    po.add_argument("--split", type=int, default=42)
    po.add_argument("--block", type=int, nargs=1)
    po.add_argument("--batch", type=int, nargs=1)
    po.add_argument("--steps", type=int, default=6)
    po.add_argument("--aug", default="course")

    nb = sub.add_parser("notebook", help="save a head model, fine-tune it as notebook 05 would "
                                         "(fresh process: time, peak RSS), load both with plain Keras")
    nb.add_argument("--split", type=int, default=42)
    add_cfg_args(nb)
    nh = sub.add_parser("nb-head", help="(internal) save a head model")
    nh.add_argument("--split", type=int, default=42)
    nh.add_argument("--head", default=DEFAULTS["head"])
    nh.add_argument("--save", required=True)
    nf = sub.add_parser("nb-finetune", help="(internal) fine-tune a saved head model")
    nf.add_argument("--split", type=int, default=42)
    nf.add_argument("--head-model", required=True)
    nf.add_argument("--save", required=True)
    add_cfg_args(nf)
    nl = sub.add_parser("nb-load", help="(internal) load a model with plain Keras, score test")
    nl.add_argument("--split", type=int, default=42)
    nl.add_argument("--model", required=True)

    s = sub.add_parser("sweep", help="many runs, each in a fresh process (skips runs already logged)")
    s.add_argument("--plan", choices=sorted(PLANS))
    s.add_argument("--config", nargs="*", default=[],
                   help='JSON recipes instead of a plan, e.g. \'{"block": 0, "batch": 16}\'')
    s.add_argument("--splits", type=int, nargs="+", default=[42])
    s.add_argument("--force", action="store_true")
    s.add_argument("--child-log", help="append the runs' output here")
    s.add_argument("--test-each-epoch", action="store_true", help="passed on to every run")

    sub.add_parser("report", help="table and paired tests from the log")
    args = p.parse_args(argv)
    {"run": cmd_run, "probe": cmd_probe, "probe-one": cmd_probe_one, "sweep": cmd_sweep,
     "report": cmd_report, "notebook": cmd_notebook, "nb-head": cmd_nb_head,
     "nb-finetune": cmd_nb_finetune, "nb-load": cmd_nb_load}[args.command](args)


if __name__ == "__main__":
    main()
