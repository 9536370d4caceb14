"""evaluate_folder on a tiny class folder built here, with a hand-set model whose answers are known."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tlcourse import evaluate  # noqa: E402
from tlcourse.config import set_seed  # noqa: E402
from tlcourse.fetch import TLCourseError  # noqa: E402

SHARPNESS = 0.02  # logit difference per grey level: p(white) = sigmoid(6 * 0.02 * (grey - 127.5))


def brightness_model(size=32):
    """Hand-set 2-class model on [0, 255] pixels: 'black' (0) if dark, 'white' (1) if bright."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(x)
    k = SHARPNESS * np.array([[-1.0, 1.0]] * 3, dtype="float32")
    b = SHARPNESS * 3 * 127.5 * np.array([1.0, -1.0], dtype="float32")
    dense.set_weights([k, b])
    return keras.Model(inputs, outputs)


def p_white(grey):
    return 1.0 / (1.0 + np.exp(-6 * SHARPNESS * (grey - 127.5)))


def solid_png(path, grey, size=(20, 14)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (grey, grey, grey)).save(path)


@pytest.fixture
def photos(tmp_path):
    """black/: 3 dark images and one light grey (a known mistake); white/: 3 bright images."""
    root = tmp_path / "photos"
    for i, grey in enumerate((0, 20, 40)):
        solid_png(root / "black" / f"b{i}.png", grey)
    solid_png(root / "black" / "odd.png", 200)
    for i, grey in enumerate((255, 230, 180)):
        solid_png(root / "white" / f"w{i}.png", grey, size=(40, 40))
    return root


def test_evaluate_folder_counts_and_confusion(photos):
    set_seed(0)
    ev = evaluate.evaluate_folder(brightness_model(), photos, batch_size=3)  # size from the model
    assert ev.class_names == ["black", "white"]
    assert ev.n_images == 7 and len(ev.file_paths) == 7
    assert ev.accuracy == pytest.approx(6 / 7)
    assert ev.per_class_accuracy == pytest.approx({"black": 0.75, "white": 1.0})
    np.testing.assert_array_equal(ev.confusion_matrix, [[3, 1], [0, 3]])
    assert ev.confusion_matrix.dtype.kind == "i"
    # predictions line up with their files (unshuffled loading)
    by_name = {os.path.basename(p): (t, y) for p, t, y in zip(ev.file_paths, ev.y_true, ev.y_pred)}
    assert by_name["odd.png"] == (0, 1) and by_name["w2.png"] == (1, 1) and by_name["b0.png"] == (0, 0)

    (mistake,) = ev.misclassified()
    assert os.path.basename(mistake.path) == "odd.png"
    assert (mistake.true_label, mistake.predicted_label) == ("black", "white")
    assert mistake.confidence == pytest.approx(p_white(200), abs=1e-4)
    conf = dict(zip(map(os.path.basename, ev.file_paths), ev.confidence))
    assert conf["b0.png"] == pytest.approx(1 - p_white(0), abs=1e-4)

    text = ev.summary()
    assert "0.857 (6/7 images)" in text and "odd.png: black -> white" in text
    assert "black" in text and "0.750 (3/4)" in text


def test_student_photos_of_some_classes_are_matched_by_name(tmp_path):
    root = tmp_path / "mine"
    solid_png(root / "white" / "snow.png", 250)
    solid_png(root / "white" / "fog.png", 90)  # too dark: predicted black
    model = brightness_model()
    with pytest.raises(TLCourseError, match="class_names"):
        evaluate.evaluate_folder(model, root)  # 1 folder, 2 outputs: ambiguous
    ev = evaluate.evaluate_folder(model, root, class_names=["black", "white"])
    np.testing.assert_array_equal(ev.y_true, [1, 1])
    assert ev.accuracy == 0.5
    assert np.isnan(ev.per_class_accuracy["black"]) and ev.per_class_accuracy["white"] == 0.5
    assert "(no images)" in ev.summary()
    with pytest.raises(TLCourseError, match="not classes the model knows"):
        evaluate.evaluate_folder(model, root, class_names=["black", "grey"])
    with pytest.raises(TLCourseError, match="not a folder"):
        evaluate.evaluate_folder(model, tmp_path / "missing")


def test_logits_are_turned_into_probabilities(photos):
    model = brightness_model()
    logits = keras.Model(model.input, model.layers[-1].output)  # same Dense...
    logits.layers[-1].activation = keras.activations.linear  # ...without its softmax
    raw = logits.predict(np.full((1, 32, 32, 3), 200.0, "float32"), verbose=0)
    assert not np.isclose(raw.sum(), 1.0)  # really logits
    ev = evaluate.evaluate_folder(logits, photos)
    np.testing.assert_allclose(ev.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert ev.misclassified()[0].confidence == pytest.approx(p_white(200), abs=1e-4)


def test_plots_return_figures(photos):
    ev = evaluate.evaluate_folder(brightness_model(), photos)
    fig = evaluate.plot_confusion(ev)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["3", "1", "0", "3"]
    plt.close(fig)
    fig = evaluate.plot_confusion(ev, normalize=True)
    assert [t.get_text() for t in fig.axes[0].texts][:2] == ["0.75", "0.25"]
    plt.close(fig)

    fig = evaluate.show_misclassified(ev)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 1
    assert "true: black" in shown[0].get_title() and "pred: white" in shown[0].get_title()
    assert shown[0].images[0].get_array().shape[:2] == (14, 20)  # the photo itself, from its file
    plt.close(fig)


def test_show_misclassified_when_all_are_right(tmp_path):
    root = tmp_path / "easy"
    solid_png(root / "black" / "a.png", 0)
    solid_png(root / "white" / "b.png", 255)
    ev = evaluate.evaluate_folder(brightness_model(), root)
    assert ev.accuracy == 1.0 and ev.misclassified() == []
    fig = evaluate.show_misclassified(ev)
    assert "No misclassified images" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
