"""Sweep: a new head on cached, frozen MobileNet features (notebook 04) vs LogisticRegression.

The reference is the plain baseline of issue 9: frozen MobileNet features (224 px, pixels
scaled to [-1, 1], global-average-pooled, 1,024-d) + scikit-learn ``LogisticRegression()``
(default C=1) trained on the split's 800 training photos. Each Keras recipe is a softmax
``Dense`` layer on the same features, trained with Adam; with an L2 penalty
``lambda = 1 / (2 C N)`` on its kernel it is the same model as the logistic regression
(scikit-learn minimises ``C * sum(logloss) + 0.5 * ||W||^2``; Keras minimises
``mean(logloss) + lambda * ||W||^2``). Recipes differ in which cached *views* of the training
photos they train on (the photos, their mirror images, fixed augmented copies), the penalty,
dropout and the early-stopping rule. Every recipe is scored on the validation and test photos,
plain and with test-time flip averaging (mean of the probabilities for a photo and its mirror).

    python benchmarks/sweep_head.py features --seeds 42 1 2 3 4   # cache features (once)
    python benchmarks/sweep_head.py run --seeds 42 1 2 3 4        # train and score the recipes
    python benchmarks/sweep_head.py report                        # table + paired tests

Raw results: build/bench/head_runs.jsonl (one record per recipe and split, with per-photo
correctness), build/bench/head_summary.csv; features: build/bench/features/seed<S>.npz.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import sweep_common as common  # noqa: E402

AUG_COPIES = 4  # fixed augmented copies per augmentation kind, cached per split


# ----------------------------------------------------------------------------- features

def features_path(out, seed):
    return Path(out) / "features" / f"seed{seed}.npz"


def extract_features(splits_root, seed, out, copies=AUG_COPIES, batch_size=32):
    """Features of every view of a split, cached in build/bench/features/seed<S>.npz.

    Views of the training photos: ``orig``, ``flip`` (mirror image), ``flipzoom<k>`` and
    ``course<k>`` (k = 0..copies-1: one fixed random draw of that augmentation each).
    Validation and test photos: ``orig`` and ``flip``.
    """
    import keras
    import tensorflow as tf

    path = features_path(out, seed)
    if path.exists():
        print(f"seed {seed}: features cached in {path}")
        return path
    data = common.load_split(splits_root, seed)
    extractor = common.feature_extractor(common.mobilenet_base())

    def embed(x):
        return extractor.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)

    def embed_aug(x, kind, k):
        aug = keras.Sequential(common.augmentation_layers(kind, seed=1000 * k + 17))
        feats = []
        for i in range(0, len(x), batch_size):
            xb = tf.convert_to_tensor(x[i:i + batch_size].astype(np.float32))
            feats.append(extractor(aug(xb, training=True), training=False).numpy())
        return np.concatenate(feats)

    arrays, t0 = {}, time.perf_counter()
    n_photos = 0
    for part in ("train", "val", "test"):
        x, y, paths = data[part]
        arrays[f"{part}_y"] = y
        arrays[f"{part}_paths"] = np.array(paths)
        arrays[f"{part}_orig"] = embed(x)
        arrays[f"{part}_flip"] = embed(x[:, :, ::-1, :])
        n_photos += 2 * len(x)
        if part == "train":
            for kind in ("flipzoom", "course"):
                for k in range(copies):
                    arrays[f"train_{kind}{k}"] = embed_aug(x, kind, k)
                    n_photos += len(x)
    seconds = time.perf_counter() - t0
    arrays["class_names"] = np.array(data["class_names"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.rename(path)
    print(f"seed {seed}: {n_photos} photos embedded in {seconds:.0f} s "
          f"({n_photos / seconds:.0f} photos/s) -> {path}")
    return path


def load_features(out, seed):
    path = features_path(out, seed)
    if not path.exists():
        sys.exit(f"{path} missing: run `python benchmarks/sweep_head.py features --seeds {seed}`")
    return dict(np.load(path))


VIEW_SETS = {
    "orig": ["orig"],
    "flip": ["orig", "flip"],
    "flipzoom4": ["orig", "flip"] + [f"flipzoom{k}" for k in range(AUG_COPIES)],
    "course4": ["orig", "flip"] + [f"course{k}" for k in range(AUG_COPIES)],
    "all": ["orig", "flip"] + [f"flipzoom{k}" for k in range(AUG_COPIES)]
           + [f"course{k}" for k in range(AUG_COPIES)],
}


def training_set(feats, views):
    X = np.concatenate([feats[f"train_{v}"] for v in VIEW_SETS[views]])
    y = np.tile(feats["train_y"], len(VIEW_SETS[views]))
    return X, y


# ----------------------------------------------------------------------------- recipes

# name -> recipe. kind "logreg": scikit-learn LogisticRegression(C); kind "dense": Keras
# Dense softmax, L2 lambda = 1 / (2 * C * N) with N the number of training rows (``C`` per
# row, as scikit-learn) or, with ``per_photo``, N = 800 photos whatever the number of views.
RECIPES = {
    "logreg_C1": dict(kind="logreg", views="orig", C=1.0),            # THE baseline of issue 9
    "logreg_C1_flip": dict(kind="logreg", views="flip", C=1.0),
    "logreg_C0.3": dict(kind="logreg", views="orig", C=0.3),
    "logreg_C3": dict(kind="logreg", views="orig", C=3.0),
    "logreg_C1_all": dict(kind="logreg", views="all", C=1.0),
    # Keras, the notebook's old recipe: Adam 1e-3, dropout 0.2, no penalty, 40 epochs, no ES
    "dense_old40": dict(kind="dense", views="orig", C=None, dropout=0.2, epochs=40, es=None),
    # Keras, L2 matched to C=1: the logistic regression itself
    "dense_C1": dict(kind="dense", views="orig", C=1.0, dropout=0.0, epochs=300, es="val_loss"),
    "dense_C1_esacc": dict(kind="dense", views="orig", C=1.0, dropout=0.0, epochs=300,
                           es="val_accuracy"),
    "dense_C1_flip": dict(kind="dense", views="flip", C=1.0, dropout=0.0, epochs=300, es="val_loss"),
    "dense_C1_flipzoom4": dict(kind="dense", views="flipzoom4", C=1.0, dropout=0.0, epochs=300,
                               es="val_loss"),
    "dense_C1_course4": dict(kind="dense", views="course4", C=1.0, dropout=0.0, epochs=300,
                             es="val_loss"),
    "dense_C1_all": dict(kind="dense", views="all", C=1.0, dropout=0.0, epochs=300, es="val_loss"),
    "dense_C0.3_all": dict(kind="dense", views="all", C=0.3, dropout=0.0, epochs=300,
                           es="val_loss"),
    "dense_C3_all": dict(kind="dense", views="all", C=3.0, dropout=0.0, epochs=300, es="val_loss"),
    "dense_C1_all_drop": dict(kind="dense", views="all", C=1.0, dropout=0.2, epochs=300,
                              es="val_loss"),
    # trained to convergence: Adam 3e-3 decayed to 0 (cosine) over 3,000 steps, no early stop
    "dense_C1_cos": dict(kind="dense", views="orig", C=1.0, lr=3e-3, schedule="cosine",
                         steps=3000, es=None),
    "dense_C1_flip_cos": dict(kind="dense", views="flip", C=1.0, lr=3e-3, schedule="cosine",
                              steps=3000, es=None),
    "dense_C1_course4_cos": dict(kind="dense", views="course4", C=1.0, lr=3e-3,
                                 schedule="cosine", steps=3000, es=None),
    "dense_C1_all_cos": dict(kind="dense", views="all", C=1.0, lr=3e-3, schedule="cosine",
                             steps=3000, es=None),
    "dense_C1pp_all_cos": dict(kind="dense", views="all", C=1.0, per_photo=True, lr=3e-3,
                               schedule="cosine", steps=3000, es=None),
    "dense_C1_all_cos_esacc": dict(kind="dense", views="all", C=1.0, lr=3e-3,
                                   schedule="cosine", steps=3000, es="val_accuracy",
                                   patience=10),
    "dense_C1pp_all": dict(kind="dense", views="all", C=1.0, per_photo=True, dropout=0.0,
                           epochs=300, es="val_loss"),
}


def fit_logreg(X, y, C):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=5000)
    clf.fit(X, y)
    return clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)


def fit_dense(X, y, Xv, yv, recipe, seed=0):
    """A softmax Dense layer on cached features; returns (kernel, bias, epochs run, best epoch).

    Adam at ``lr`` (default 1e-3), batch ``batch`` (default 64), for ``epochs`` epochs or, with
    ``steps``, as many epochs as make that many optimizer steps; ``schedule="cosine"`` decays
    the rate to 0 over them. ``es`` = a monitored quantity for EarlyStopping (patience
    ``patience``, best weights restored) or None.
    """
    import keras

    keras.utils.set_random_seed(seed)
    n_classes = int(y.max()) + 1
    batch = recipe.get("batch", 64)
    steps_per_epoch = int(np.ceil(len(X) / batch))
    epochs = recipe.get("epochs") or int(np.ceil(recipe["steps"] / steps_per_epoch))
    C = recipe.get("C")
    reg = None
    if C is not None:
        n = 800 if recipe.get("per_photo") else len(X)
        reg = keras.regularizers.L2(1.0 / (2.0 * C * n))
    dense = keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg)
    layers = [keras.Input((X.shape[1],))]
    if recipe.get("dropout"):
        layers.append(keras.layers.Dropout(recipe["dropout"]))
    model = keras.Sequential(layers + [dense])
    lr = recipe.get("lr", 1e-3)
    if recipe.get("schedule") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    callbacks = []
    if recipe.get("es"):
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=recipe["es"], patience=recipe.get("patience", 20), restore_best_weights=True))
    validation = (Xv, yv) if callbacks else None  # validation only when it decides something
    hist = model.fit(X, y, validation_data=validation, epochs=epochs,
                     batch_size=batch, shuffle=True, callbacks=callbacks, verbose=0)
    epochs_run = len(hist.history["loss"])
    best = (int(np.argmax(hist.history[recipe["es"]]) if recipe["es"] == "val_accuracy"
                else np.argmin(hist.history[recipe["es"]])) + 1) if recipe.get("es") else epochs_run
    kernel, bias = dense.get_weights()
    return kernel, bias, epochs_run, best


def objective(kernel, bias, X, y, C=1.0):
    """scikit-learn's objective C * sum(logloss) + 0.5 * ||W||^2 (how converged a head is)."""
    p = softmax(X @ kernel + bias)
    return float(C * -np.log(p[np.arange(len(y)), y] + 1e-12).sum() + 0.5 * np.sum(kernel ** 2))


def train_head(feats, name, seed=0):
    """(kernel, bias, info) of recipe ``name`` on one split's cached features."""
    recipe = RECIPES[name]
    X, y = training_set(feats, recipe["views"])
    t0 = time.perf_counter()
    if recipe["kind"] == "logreg":
        kernel, bias = fit_logreg(X, y, recipe["C"])
        info = {}
    else:
        kernel, bias, epochs_run, best = fit_dense(X, y, feats["val_orig"], feats["val_y"],
                                                   recipe, seed=seed)
        info = {"epochs_run": epochs_run, "best_epoch": best}
    info["train_s"] = time.perf_counter() - t0
    info["n_rows"] = len(X)
    if recipe.get("C"):
        X0, y0 = training_set(feats, "orig")  # objective on the plain photos, C=1 scale
        info["objective_orig_C1"] = objective(kernel, bias, X0, y0)
    return kernel, bias, info


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def score(kernel, bias, feats):
    """Per-photo correctness on val and test, plain and flip-averaged."""
    out = {}
    for part in ("val", "test"):
        p = softmax(feats[f"{part}_orig"] @ kernel + bias)
        pf = softmax(feats[f"{part}_flip"] @ kernel + bias)
        y = feats[f"{part}_y"]
        out[f"{part}_correct"] = (p.argmax(1) == y).astype(int).tolist()
        out[f"{part}_tta_correct"] = (((p + pf) / 2).argmax(1) == y).astype(int).tolist()
        out[f"{part}_acc"] = float(np.mean(out[f"{part}_correct"]))
        out[f"{part}_tta_acc"] = float(np.mean(out[f"{part}_tta_correct"]))
    return out


# ----------------------------------------------------------------------------- commands

def cmd_features(args):
    for seed in args.seeds:
        extract_features(args.splits_root, seed, args.out)


def cmd_run(args):
    names = args.recipes or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipes {unknown}; known: {list(RECIPES)}")
    log = Path(args.out) / "head_runs.jsonl"
    done = {(r["recipe"], r["split"], r["run_seed"]) for r in common.read_jsonl(log)}
    for seed in args.seeds:
        feats = load_features(args.out, seed)
        for name in names:
            for run_seed in args.run_seeds:
                if RECIPES[name]["kind"] == "logreg" and run_seed != args.run_seeds[0]:
                    continue  # deterministic
                if (name, seed, run_seed) in done and not args.force:
                    continue
                kernel, bias, info = train_head(feats, name, seed=run_seed)
                rec = {"recipe": name, "split": seed, "run_seed": run_seed, **info,
                       **score(kernel, bias, feats)}
                common.append_jsonl(log, rec)
                print(f"split {seed} {name:20s} seed {run_seed}: val {rec['val_acc']:.1%} "
                      f"test {rec['test_acc']:.1%} (tta {rec['test_tta_acc']:.1%}) "
                      f"{info['train_s']:.1f} s", flush=True)
    cmd_report(args)


def cmd_report(args):
    rows = common.read_jsonl(Path(args.out) / "head_runs.jsonl")
    if not rows:
        sys.exit("no results yet: run `sweep_head.py run` first")
    order = [n for n in RECIPES if any(r["recipe"] == n for r in rows)]
    summary = []
    print(f"\n{'recipe':20s} {'splits':>6s} {'runs':>4s} {'val':>13s} {'test':>13s} "
          f"{'val tta':>13s} {'test tta':>13s} {'fit s':>6s}")
    for name in order:
        rs = [r for r in rows if r["recipe"] == name]
        row = {"recipe": name, "splits": len({r["split"] for r in rs}), "runs": len(rs)}
        for key in ("val_acc", "test_acc", "val_tta_acc", "test_tta_acc", "train_s"):
            m, s = common.mean_sd(r[key] for r in rs)
            row[key + "_mean"], row[key + "_sd"] = m, s
        summary.append(row)
        cells = " ".join(f"{100 * row[k + '_mean']:5.1f} ± {100 * row[k + '_sd']:4.1f}"
                         for k in ("val_acc", "test_acc", "val_tta_acc", "test_tta_acc"))
        print(f"{name:20s} {row['splits']:6d} {row['runs']:4d} {cells} {row['train_s_mean']:6.1f}")
    common.write_csv(Path(args.out) / "head_summary.csv", summary)

    # paired: each recipe vs the baseline, pooled over splits (first run seed), val+test pooled
    base = args.baseline
    print(f"\npaired vs {base} (plain, no flip) on the same photos, pooled over splits "
          "(test: 100 photos per split; val+test: 200, but early stopping on val favours recipes "
          "that use it; a/b = recipe right & baseline wrong / recipe wrong & baseline right; "
          "exact McNemar p):")
    for name in order:
        if name == base:
            continue
        for parts, tta in ((("test",), False), (("test",), True), (("val", "test"), False),
                           (("val", "test"), True)):
            a, b = [], []
            for split in sorted({r["split"] for r in rows}):
                ra = [r for r in rows if r["recipe"] == name and r["split"] == split]
                rb = [r for r in rows if r["recipe"] == base and r["split"] == split]
                if not ra or not rb:
                    continue
                ra, rb = ra[0], rb[0]
                key = "_tta_correct" if tta else "_correct"
                for part in parts:
                    a += ra[part + key]
                    b += rb[part + "_correct"]
            if a:
                n01, n10, p = common.mcnemar(a, b)
                label = "+".join(parts) + (" tta" if tta else "")
                print(f"  {name:24s} {label:12s} n={len(a):5d} "
                      f"acc {np.mean(a):6.1%} vs {np.mean(b):6.1%}  {n01:3d}/{n10:3d}  p={p:.3f}")


def main(argv=None):
    p, sub = common.argument_parser(__doc__)
    f = sub.add_parser("features", help="extract and cache the features of every view")
    f.add_argument("--seeds", type=int, nargs="+", default=[42])
    r = sub.add_parser("run", help="train and score head recipes on cached features")
    r.add_argument("--seeds", type=int, nargs="+", default=[42], help="splits")
    r.add_argument("--run-seeds", type=int, nargs="+", default=[0], help="Keras seeds per split")
    r.add_argument("--recipes", nargs="*", help=f"default: all of {list(RECIPES)}")
    r.add_argument("--baseline", default="logreg_C1")
    r.add_argument("--force", action="store_true", help="rerun recipes already in the log")
    rep = sub.add_parser("report", help="table and paired tests from the log")
    rep.add_argument("--baseline", default="logreg_C1")
    args = p.parse_args(argv)
    {"features": cmd_features, "run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
