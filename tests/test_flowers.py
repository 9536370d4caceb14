"""Provisioning the flowers (tlcourse.course.flowers): sources, safe extraction, splits.

Every fixture (photos, archives, broken files) is built here with PIL and
tarfile; nothing is downloaded (the canonical URL points at a missing file).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tlcourse as tl
from tlcourse.course import fetch
from tlcourse.course import flowers as data
from tlcourse.lesson.data import SPLITS
from tlcourse.lesson.errors import TLCourseError

CLASSES = ("daisy", "roses", "tulips")
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")  # the archive's


# --------------------------------------------------------------------------- builders


def _jpeg_bytes(color, size=(12, 10), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def make_photos(folder: Path, classes=CLASSES, per_class=10, top="flower_photos") -> Path:
    """folder/<top>/<class>/<i>.jpg, small and distinct, plus a LICENSE.txt."""
    base = folder / top if top else folder
    for c, name in enumerate(classes):
        (base / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            color = (20 * c + 3, (7 * i) % 256, 100 + c)
            (base / name / f"{name}_{i:03d}.jpg").write_bytes(_jpeg_bytes(color))
    if top:
        (base / "LICENSE.txt").write_text("CC-BY\n")
    return base


def make_archive(path: Path, classes=CLASSES, per_class=10, top="flower_photos") -> Path:
    staging = path.parent / (path.name + ".staging")
    make_photos(staging, classes, per_class, top)
    with tarfile.open(path, "w:gz") as tar:
        for entry in sorted(staging.iterdir()):
            tar.add(entry, arcname=entry.name)
    return path


def crafted_archive(path: Path, bad: tarfile.TarInfo, bad_data: bytes | None = None) -> Path:
    """A few good members, then ``bad``."""
    with tarfile.open(path, "w:gz") as tar:
        for i in range(3):
            payload = _jpeg_bytes((i * 50, 10, 10))
            info = tarfile.TarInfo(f"flower_photos/daisy/{i}.jpg")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        if bad_data is not None:
            bad.size = len(bad_data)
            tar.addfile(bad, io.BytesIO(bad_data))
        else:
            tar.addfile(bad)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".flower_photos"))


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """The canonical download can never reach the network in these tests."""
    monkeypatch.setattr(data, "FLOWERS_URL", (tmp_path / "nowhere" / "flower_photos.tgz").as_uri())


@pytest.fixture
def archive(tmp_path) -> Path:
    return make_archive(tmp_path / "src" / "flower_photos_test.tgz")


# --------------------------------------------------------------------------- splits


def _split_files(s) -> dict:
    return {
        split: {c: sorted(p.name for p in (s.root / split / c).iterdir()) for c in s.class_names}
        for split in SPLITS
    }


def test_split_is_deterministic_stratified_disjoint_and_complete(data_home, archive, monkeypatch):
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(archive))
    s = data.make_splits(seed=7, per_class=8)
    assert s.class_names == list(CLASSES)
    first = _split_files(s)
    # stratified: every class cut 6/1/1 (0.8/0.1/0.1 of 8, rounded)
    for c in CLASSES:
        assert [len(first[split][c]) for split in SPLITS] == [6, 1, 1]
        assert [s.counts[split][c] for split in SPLITS] == [6, 1, 1]
    assert s.sizes == {"train": 18, "val": 3, "test": 3}
    for c in CLASSES:
        parts = [set(first[split][c]) for split in SPLITS]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert set().union(*parts) <= {f"{c}_{i:03d}.jpg" for i in range(10)}
        assert len(set().union(*parts)) == 8
    # every entry resolves to the extracted photo of its own class
    link = next((s.train_dir / "daisy").iterdir())
    assert link.resolve().parent == (data_home / "flower_photos" / "daisy").resolve()
    # the lesson side finds the same split; rebuilt from scratch: still the same files
    monkeypatch.setenv("TLCOURSE_DATA", str(data_home))
    assert tl.flowers_splits(per_class=8, seed=7) == s
    shutil.rmtree(s.root)
    with pytest.raises(TLCourseError, match="make setup"):
        tl.flowers_splits(per_class=8, seed=7)
    assert _split_files(data.make_splits(seed=7, per_class=8)) == first
    # another seed: another split
    other = data.make_splits(seed=8, per_class=8)
    assert other.root != s.root and _split_files(other) != first


def test_split_rounding_table_and_a_growing_test_split(data_home, monkeypatch, tmp_path):
    big = make_archive(tmp_path / "big" / "flower_photos.tgz", classes=("a", "b"), per_class=45)
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(big))
    s = data.make_splits(per_class=40)
    assert s.sizes == {"train": 64, "val": 8, "test": 8}
    assert s.table().to_dict() == {
        "train": {"a": 32, "b": 32, "total": 64},
        "val": {"a": 4, "b": 4, "total": 8},
        "test": {"a": 4, "b": 4, "total": 8},
        "total": {"a": 40, "b": 40, "total": 80},
    }
    # a bigger archive (the canonical one in full mode): train and validation as before,
    # every photo beyond per_class joins the test split
    before = _split_files(s)
    grown = data.make_splits(per_class=40, grow_test=True)
    assert grown.sizes == {"train": 64, "val": 8, "test": 18}
    assert _split_files(grown)["train"] == before["train"]
    assert set(before["test"]["a"]) < set(_split_files(grown)["test"]["a"])
    for bad in [(0, 2), (42, 2.5), (-1, 40), (42, "all")]:
        with pytest.raises(ValueError, match="per_class"):
            data.make_splits(*bad)


# --------------------------------------------------------------------------- safe extraction


def _link(name, kind, target):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "bad, data_bytes, member",
    [
        (
            tarfile.TarInfo("flower_photos/../../escaped.txt"),
            b"x",
            "flower_photos/../../escaped.txt",
        ),
        (
            _link("flower_photos/daisy/sym.jpg", tarfile.SYMTYPE, "/etc/passwd"),
            None,
            "flower_photos/daisy/sym.jpg",
        ),
        (
            _link("flower_photos/daisy/hard.jpg", tarfile.LNKTYPE, "flower_photos/daisy/0.jpg"),
            None,
            "flower_photos/daisy/hard.jpg",
        ),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_trusted(
    data_home, tmp_path, monkeypatch, bad, data_bytes, member
):
    evil = crafted_archive(tmp_path / "evil.tgz", bad, data_bytes)
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(evil))
    with pytest.raises(TLCourseError, match="unsafe member") as info:
        data.flowers_dir(verbose=False)
    assert repr(member) in str(info.value)
    assert not (data_home / "flower_photos").exists()
    assert not (data_home / data.MARKER_NAME).exists()
    assert leftovers(data_home) == []
    assert (
        not (tmp_path / "escaped.txt").exists() and not (data_home.parent / "escaped.txt").exists()
    )
    # the generic function refuses the same way and leaves no folder
    with pytest.raises(TLCourseError, match="unsafe member"):
        data.safe_extract(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_an_absolute_member_lands_inside_never_at_its_path(data_home, tmp_path, monkeypatch):
    """Tarfile's data filter strips the leading '/': the file stays inside the target folder."""
    target = Path("/tmp/tlcourse_absolute_escape.txt")
    target.unlink(missing_ok=True)
    evil = crafted_archive(tmp_path / "evil.tgz", tarfile.TarInfo(str(target)), b"x")
    dest = data.safe_extract(evil, tmp_path / "out")
    assert (dest / "tmp" / target.name).read_bytes() == b"x" and not target.exists()
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(evil))
    with pytest.raises(TLCourseError, match="does not have the flowers layout"):
        data.flowers_dir(verbose=False)
    assert not target.exists() and not (data_home / "flower_photos").exists()


def test_safe_extract_extracts_atomically(tmp_path, archive):
    dest = data.safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in (dest / "flower_photos").iterdir()) == ["LICENSE.txt", *CLASSES]
    with pytest.raises(TLCourseError, match="already exists"):
        data.safe_extract(archive, dest)


def test_interrupted_extraction_leaves_nothing_trusted(data_home, archive, monkeypatch):
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(archive))
    real = data._flowers_filter
    calls = []

    def interrupted(member, dest_path):
        calls.append(member.name)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(member, dest_path)

    monkeypatch.setattr(data, "_flowers_filter", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.flowers_dir(verbose=False)
    assert not (data_home / "flower_photos").exists()
    assert not (data_home / data.MARKER_NAME).exists()
    assert leftovers(data_home) == []
    monkeypatch.setattr(data, "_flowers_filter", real)
    folder = data.flowers_dir(verbose=False)
    assert data._class_counts(folder) == dict.fromkeys(CLASSES, 10)
    assert json.loads((data_home / data.MARKER_NAME).read_text())["sha256"] == fetch.file_hash(
        archive
    )


def test_cache_without_marker_is_not_trusted(data_home, archive, monkeypatch):
    # what a crash between the rename and the marker would leave
    make_photos(data_home, classes=("weeds", "grass"), per_class=2)
    with pytest.raises(TLCourseError, match="not trusted"):
        data.flowers_dir(verbose=False)
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(archive))
    folder = data.flowers_dir(verbose=False)
    assert data._class_counts(folder) == dict.fromkeys(CLASSES, 10)  # replaced, not merged


# --------------------------------------------------------------------------- source order


def test_source_order(data_home, tmp_path, monkeypatch, capsys):
    env_archive = make_archive(tmp_path / "env" / "mine.tgz", classes=("a", "b"), per_class=3)
    in_data = make_archive(data_home / "flower_photos.tgz", classes=("c", "d", "e"), per_class=3)
    extractions = []
    real = data._extract_to_temp
    monkeypatch.setattr(
        data,
        "_extract_to_temp",
        lambda archive, *a: extractions.append(Path(archive).name) or real(archive, *a),
    )

    def counts():
        return sorted(data._class_counts(data_home / "flower_photos"))

    # 1. TLCOURSE_FLOWERS beats data/
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(env_archive))
    data.flowers_dir()
    assert counts() == ["a", "b"]
    assert "Flowers data:" in capsys.readouterr().out
    data.flowers_dir(verbose=False)  # same archive: the cache is reused
    assert extractions == ["mine.tgz"]
    # 2. without it, data/'s archive beats the cache (from another archive: re-extracted)
    monkeypatch.delenv("TLCOURSE_FLOWERS")
    data.flowers_dir(verbose=False)
    assert counts() == ["c", "d", "e"] and extractions == ["mine.tgz", "flower_photos.tgz"]
    # 3. without archives, the cache beats the download
    in_data.unlink()
    monkeypatch.setattr(fetch, "download", lambda *a, **k: pytest.fail("downloaded"))
    assert data.flowers_dir(verbose=False) == data_home / "flower_photos"
    assert counts() == ["c", "d", "e"]


def test_several_archives_in_data_say_which_is_used(data_home, capsys):
    make_archive(data_home / "flower_photos_mini.tar.gz", classes=("m", "n"), per_class=3)
    make_archive(data_home / "flower_photos.tgz", classes=("p", "q"), per_class=3)
    folder = data.flowers_dir()
    assert sorted(data._class_counts(folder)) == ["p", "q"]
    out = capsys.readouterr().out
    assert "flower_photos.tgz, flower_photos_mini.tar.gz; using flower_photos.tgz" in out


def test_download_is_last_and_verified(data_home, tmp_path, monkeypatch):
    served = make_archive(
        tmp_path / "server" / "flower_photos.tgz", classes=("x", "y"), per_class=3
    )
    monkeypatch.setattr(data, "FLOWERS_URL", served.as_uri())
    monkeypatch.setattr(data, "FLOWERS_SHA256", "0" * 64)
    with pytest.raises(TLCourseError) as info:
        data.flowers_dir(verbose=False)
    message = str(info.value)
    assert message.startswith("No flowers data found. Tried: TLCOURSE_FLOWERS (unset)")
    assert (
        "sha256" in message
        and "0" * 64 in message
        and "Place flower_photos.tgz in data/" in message
    )
    assert not (data_home / "flower_photos.tgz").exists()
    monkeypatch.setattr(data, "FLOWERS_SHA256", fetch.file_hash(served))
    folder = data.flowers_dir(verbose=False)
    assert (data_home / "flower_photos.tgz").is_file()
    assert sorted(data._class_counts(folder)) == ["x", "y"]


def test_no_source_at_all(data_home):
    with pytest.raises(TLCourseError) as info:
        data.flowers_dir(verbose=False)
    message = str(info.value)
    for part in (
        "TLCOURSE_FLOWERS (unset)",
        "flower_photos*.tgz (none)",
        "(missing)",
        "Could not download",
        "TLCOURSE_FLOWERS=../shared/data/flower_photos_mini.tgz",
    ):
        assert part in message


def test_url_in_env_is_downloaded_with_fetch(data_home, archive, monkeypatch):
    calls = []
    real = fetch.download
    monkeypatch.setattr(
        fetch, "download", lambda url, dest, **k: calls.append(url) or real(url, dest, **k)
    )
    monkeypatch.setenv("TLCOURSE_FLOWERS", archive.as_uri())
    folder = data.flowers_dir(verbose=False)
    assert calls == [archive.as_uri()]
    assert (data_home / archive.name).is_file()
    assert sorted(data._class_counts(folder)) == list(CLASSES)
    data.flowers_dir(verbose=False)
    assert len(calls) == 1  # downloaded once
    monkeypatch.setenv("TLCOURSE_FLOWERS", (archive.parent / "missing.tgz").as_uri())
    with pytest.raises(TLCourseError, match="TLCOURSE_FLOWERS=file:.*Could not download"):
        data.flowers_dir(verbose=False)


# --------------------------------------------------------------------------- bad archives


def test_bad_archives(data_home, tmp_path, monkeypatch, archive):
    cases = {}
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"this is not an archive\n" * 20)
    cases[junk] = "is not a readable .tgz archive"
    whole = archive.read_bytes()
    # cut short anywhere (a download that stopped), even just before the gzip trailer's length
    for cut in (len(whole) // 4, len(whole) // 2, 3 * len(whole) // 4, len(whole) - 4):
        truncated = tmp_path / f"truncated_{cut}.tgz"
        truncated.write_bytes(whole[:cut])
        cases[truncated] = "is not a readable .tgz archive"
    flipped = tmp_path / "bad_checksum.tgz"  # every byte there, the trailer's CRC-32 wrong
    flipped.write_bytes(whole[:-8] + bytes([whole[-8] ^ 0xFF]) + whole[-7:])
    cases[flipped] = "is not a readable .tgz archive.*CRC"
    layout = make_archive(tmp_path / "layout" / "photos.tgz", top="photos")
    cases[layout] = "does not have the flowers layout.*found photos/"
    flat = make_archive(tmp_path / "flat" / "flat.tgz", top="")
    cases[flat] = "does not have the flowers layout.*found daisy/, roses/, tulips/"
    one = make_archive(tmp_path / "one" / "one.tgz", classes=("daisy",))
    cases[one] = "does not have the flowers layout.*1 class folder"
    cases[tmp_path / "does_not_exist.tgz"] = "does not exist"
    cases[tmp_path] = "is a folder"
    for path, expected in cases.items():
        monkeypatch.setenv("TLCOURSE_FLOWERS", str(path))
        with pytest.raises(TLCourseError, match=expected):
            data.flowers_dir(verbose=False)
        assert not (data_home / "flower_photos").exists(), path
        assert leftovers(data_home) == []


def test_relative_env_path_is_found_from_the_project_folder(data_home, monkeypatch, tmp_path):
    # notebooks run in notebooks/, CI sets TLCOURSE_FLOWERS relative to the project folder
    project = tmp_path / "project"
    make_archive(project.parent / "shared" / "f.tgz", per_class=3)
    (project / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(data, "project_root", lambda: project)
    monkeypatch.chdir(project / "notebooks")
    monkeypatch.setenv("TLCOURSE_FLOWERS", "../shared/f.tgz")  # not found from notebooks/
    assert sorted(data._class_counts(data.flowers_dir(verbose=False))) == list(CLASSES)


# --------------------------------------------------------------------------- clean images


def make_odd_folder(root: Path) -> Path:
    good, odd = root / "good", root / "odd"
    good.mkdir(parents=True)
    odd.mkdir()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(good / "a_rgb.jpg")
    Image.new("L", (20, 20), 128).save(good / "b_grey.png")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(good / "c_cmyk.jpg", quality=95)
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(good / "d_rgba.png")  # fully transparent
    palette = Image.new("P", (20, 20), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.save(good / "e_palette.gif", transparency=0)
    (good / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / ".ipynb_checkpoints").mkdir()
    rng = np.random.default_rng(0)
    noisy = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(noisy, "JPEG")
    (odd / "a_truncated.jpg").write_bytes(noisy.getvalue()[: len(noisy.getvalue()) // 2])
    (odd / "b_text.jpg").write_text("I am not a photo\n")
    Image.new("RGB", (30, 40), (200, 10, 10)).save(odd / "c_ok.jpg")
    return root


def test_odd_images_are_converted_broken_ones_left_out_and_keras_reads_the_rest(tmp_path):
    import keras

    root = make_odd_folder(tmp_path / "homework")
    sources = {
        c: sorted(p for p in (root / c).iterdir() if not p.name.startswith("."))
        for c in ("good", "odd")
    }
    with pytest.warns(UserWarning, match=r"Skipped 2 of 8 files") as record:
        converted = data._populate(tmp_path / "clean", sources, root)
    message = str(record[0].message)
    assert (
        "a_truncated.jpg (truncated or corrupt" in message
        and "b_text.jpg (not an image)" in message
    )
    assert [Path(p).name for p in converted] == ["c_cmyk.jpg", "d_rgba.png", "e_palette.gif"]
    assert sorted(p.name for p in (tmp_path / "clean" / "good").iterdir()) == [
        "a_rgb.jpg",
        "b_grey.png",
        "c_cmyk.png",
        "d_rgba.png",
        "e_palette.png",
    ]
    ds = keras.utils.image_dataset_from_directory(
        tmp_path / "clean", image_size=(16, 16), shuffle=False, batch_size=None, verbose=False
    )
    images = np.stack([x.numpy() for x, _ in ds])
    labels = [int(y) for _, y in ds]
    assert images.shape == (6, 16, 16, 3) and labels == [0, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(images[1], 128, atol=1)  # grey: 3 equal channels
    np.testing.assert_allclose(images[2].mean(axis=(0, 1)), [255, 0, 0], atol=12)  # CMYK red
    np.testing.assert_allclose(images[3], 255)  # transparent: white
    np.testing.assert_allclose(images[4].mean(axis=(0, 1)), [0, 0, 255], atol=1)  # palette blue


def test_odd_files_in_the_archive_never_reach_a_split(data_home, tmp_path, monkeypatch):
    photos = make_photos(tmp_path / "src", classes=("a", "b"), per_class=10)
    (photos / "a" / "a_003.jpg").write_text("not a photo")
    Image.new("CMYK", (12, 10), (0, 255, 255, 0)).save(photos / "b" / "b_004.jpg")
    with tarfile.open(tmp_path / "odd.tgz", "w:gz") as tar:
        tar.add(photos, arcname="flower_photos")
    monkeypatch.setenv("TLCOURSE_FLOWERS", str(tmp_path / "odd.tgz"))
    with pytest.warns(UserWarning, match=r"Skipped 1 of 20 files.*a_003.jpg \(not an image\)"):
        s = data.make_splits(per_class=10)
    assert sum(s.counts[split]["a"] for split in SPLITS) == 9
    names = [p.name for split in SPLITS for p in (s.root / split / "b").iterdir()]
    assert "b_004.png" in names and "b_004.jpg" not in names


# --------------------------------------------------------------------------- augmentation


def test_augmentation_is_the_courses_image_data_generator():
    import keras

    aug = tl.augmentation(seed=1)
    assert aug.name == "augmentation"
    flip, rotation, zoom = aug.layers
    assert isinstance(flip, keras.layers.RandomFlip) and flip.mode == "horizontal"
    assert isinstance(rotation, keras.layers.RandomRotation) and rotation.factor == (-0.125, 0.125)
    assert isinstance(zoom, keras.layers.RandomZoom) and zoom.height_factor == (-0.2, 0.0)
    # Keras's sign convention: a negative factor zooms in (the centre square grows)
    image = np.zeros((1, 40, 40, 1), np.float32)
    image[:, 15:25, 15:25] = 1.0
    zoomed = keras.layers.RandomZoom((-0.2, -0.2), seed=0)(image, training=True)
    assert float(np.asarray(zoomed).sum()) > image.sum() * 1.3
    out = aug(np.zeros((2, 32, 32, 3), np.float32), training=True)
    assert tuple(out.shape) == (2, 32, 32, 3)


# --------------------------------------------------------------------------- the real mini archive


def test_mini_archive(data_home, mini_archive, monkeypatch):
    import keras

    monkeypatch.setenv("TLCOURSE_FLOWERS", str(mini_archive))
    folder = data.flowers_dir(verbose=False)
    assert data._class_counts(folder) == dict.fromkeys(FLOWER_CLASSES, 200)
    marker = json.loads((data_home / data.MARKER_NAME).read_text())
    assert marker["sha256"] == data.manifest()["flowers_mini"]["sha256"]
    s = data.make_splits(per_class=200, grow_test=True)  # the full-mode split
    assert s.class_names == list(FLOWER_CLASSES)
    for c in FLOWER_CLASSES:
        assert [s.counts[split][c] for split in SPLITS] == [160, 20, 20]
    ds = keras.utils.image_dataset_from_directory(
        s.test_dir, image_size=(32, 32), shuffle=False, verbose=False
    )
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert np.bincount(labels).tolist() == [20] * 5
