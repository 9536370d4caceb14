"""Corrupted photos and WiSE-FT weight mixes (tlcourse.lesson.robustness), notebook 05's tools."""

import numpy as np
import pytest

import tlcourse as tl


def photos(n=3, size=64, seed=0):
    rng = np.random.default_rng(seed)
    smooth = rng.uniform(0, 255, (n, size // 8, size // 8, 3)).repeat(8, axis=1).repeat(8, axis=2)
    return smooth.astype("float32")


@pytest.mark.parametrize("kind", sorted(tl.CORRUPTIONS))
def test_each_corruption_changes_the_photo_and_keeps_its_shape_and_range(kind):
    clean = photos()
    before = clean.copy()
    dirty = tl.corrupt(clean, kind)
    assert dirty.shape == clean.shape and dirty.dtype == np.float32
    assert dirty.min() >= 0 and dirty.max() <= 255
    assert np.abs(dirty - clean).mean() > 1.0  # really corrupted
    np.testing.assert_array_equal(clean, before)  # the input is not changed


def test_blur_and_downscaling_remove_fine_detail_and_brightness_saturates():
    rng = np.random.default_rng(1)
    noise = rng.uniform(0, 255, (1, 64, 64, 3)).astype("float32")  # all fine detail
    for kind in ("blurred", "downscaled"):
        assert tl.corrupt(noise, kind).std() < 0.5 * noise.std()
    grey = np.full((1, 8, 8, 3), 200.0, "float32")
    assert np.all(tl.corrupt(grey, "bright") == 255)
    with pytest.raises(ValueError, match="kind must be one of"):
        tl.corrupt(grey, "foggy")


def test_interpolate_is_the_straight_line_between_two_weight_sets():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    a = [np.zeros((3, 2), "float32"), np.zeros(2, "float32")]
    b = [np.ones((3, 2), "float32") * 4, np.ones(2, "float32") * 2]
    for alpha, kernel, bias in ((0.0, 0.0, 0.0), (0.25, 1.0, 0.5), (1.0, 4.0, 2.0)):
        tl.interpolate(model, a, b, alpha)
        got_kernel, got_bias = model.get_weights()
        assert np.allclose(got_kernel, kernel) and np.allclose(got_bias, bias)
    with pytest.raises(ValueError, match="between 0 and 1"):
        tl.interpolate(model, a, b, 1.5)
