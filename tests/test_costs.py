"""Notebook 06's cost functions: the exact figures of the issue, Keras's own counts, bad shapes."""
from fractions import Fraction

import pytest

from tlcourse import costs

# --------------------------------------------------------------------------
# The derivation and the lecture's worked example (12x12x3, 5x5, 256, no padding)
# --------------------------------------------------------------------------


def test_formulas_in_lecture_symbols():
    assert costs.standard_mult_adds(3, 32, 64, 112) == 3 * 3 * 32 * 64 * 112 * 112
    assert costs.depthwise_mult_adds(3, 32, 112) == 3 * 3 * 32 * 112 * 112
    assert costs.pointwise_mult_adds(32, 64, 112) == 32 * 64 * 112 * 112
    assert costs.separable_mult_adds(3, 32, 64, 112) == (3 * 3 * 32 + 32 * 64) * 112 * 112


@pytest.mark.parametrize("d_k,m,n,d_f", [(3, 32, 64, 112), (5, 3, 256, 8), (7, 17, 5, 3)])
def test_ratio_is_one_over_n_plus_one_over_dk_squared(d_k, m, n, d_f):
    ratio = Fraction(costs.separable_mult_adds(d_k, m, n, d_f), costs.standard_mult_adds(d_k, m, n, d_f))
    assert ratio == costs.separable_ratio(d_k, n) == Fraction(1, n) + Fraction(1, d_k**2)


def test_three_by_three_saves_eight_to_nine_times():
    for n in (64, 128, 256, 512, 1024):
        assert 7.8 < 1 / costs.separable_ratio(3, n) < 9


def test_worked_example_exact():
    x = (12, 12, 3)
    std = costs.conv2d_cost(x, 256, 5, padding="valid", bias=True)
    sep = costs.separable_conv2d_cost(x, 256, 5, padding="valid", bias=True)
    assert std.output_shape == sep.output_shape == (8, 8, 256)
    assert std.mult_adds == 1_228_800
    assert sep.mult_adds == 53_952
    assert std.params == 19_456
    assert sep.params == 1_102
    assert Fraction(std.mult_adds, sep.mult_adds) == 1 / (Fraction(1, 256) + Fraction(1, 25))
    assert round(std.mult_adds / sep.mult_adds, 1) == 22.8
    # without biases
    assert costs.conv2d_cost(x, 256, 5, bias=False).params == 19_200
    assert costs.separable_conv2d_cost(x, 256, 5, bias=False).params == 75 + 768
    # the lecture's "~2.8 M" counts 12x12 positions
    assert costs.standard_mult_adds(5, 3, 256, 12) == 2_764_800


def test_parts_of_the_worked_example():
    dw = costs.depthwise_conv2d_cost((12, 12, 3), 5)
    pw = costs.pointwise_conv2d_cost(dw.output_shape, 256)
    assert (dw.mult_adds, dw.params, dw.output_shape) == (4_800, 78, (8, 8, 3))
    assert (pw.mult_adds, pw.params, pw.output_shape) == (49_152, 1_024, (8, 8, 256))


# --------------------------------------------------------------------------
# Stride and padding
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size,kernel,stride,padding,expected", [
    (224, 3, 2, "same", 112), (112, 3, 1, "same", 112), (12, 5, 1, "valid", 8),
    (113, 3, 2, "valid", 56), (112, 3, 2, ((0, 1), (0, 1)), 56), (7, 7, 1, "valid", 1),
    (5, 3, 1, 1, 5), (6, 3, 2, "same", 3), (1, 5, 1, "same", 1), (224, 2, 2, "valid", 112),
])
def test_conv_output_size(size, kernel, stride, padding, expected):
    assert costs.conv_output_size(size, kernel, stride, padding) == expected


def test_stride_two_reduces_positions_by_four():
    s1 = costs.conv2d_cost((224, 224, 3), 32, 3, 1, "same", bias=False)
    s2 = costs.conv2d_cost((224, 224, 3), 32, 3, 2, "same", bias=False)
    assert s2.output_shape == (112, 112, 32)
    assert s1.mult_adds == 4 * s2.mult_adds == 4 * 10_838_016
    assert s1.params == s2.params == 864


def test_dense_and_batchnorm():
    fc = costs.dense_cost(1024, 1000)
    assert (fc.mult_adds, fc.params) == (1_024_000, 1_025_000)
    assert costs.dense_cost(1024, 1000, bias=False).params == 1_024_000
    assert costs.batchnorm_params(32) == 128
    assert costs.batchnorm_params(32, center=False) == 96


def test_depthwise_multiplier_and_groups():
    dw = costs.depthwise_conv2d_cost((10, 10, 4), 3, padding="same", out_channels=8)
    assert dw.output_shape == (10, 10, 8)
    assert dw.params == 9 * 8 + 8
    g = costs.conv2d_cost((10, 10, 4), 8, 3, padding="same", groups=2, bias=False)
    assert g.params == 9 * 2 * 8


# --------------------------------------------------------------------------
# Bad input: refused with a clear message
# --------------------------------------------------------------------------


@pytest.mark.parametrize("call,message", [
    (lambda: costs.standard_mult_adds(0, 3, 256, 8), "D_K must be a positive integer"),
    (lambda: costs.depthwise_mult_adds(3, -1, 8), "M must be a positive integer"),
    (lambda: costs.separable_ratio(3, 0), "N must be a positive integer"),
    (lambda: costs.pointwise_mult_adds(3, 2.5, 8), "N must be a positive integer"),
    (lambda: costs.conv2d_cost((0, 12, 3), 256, 5), "input height must be a positive integer"),
    (lambda: costs.conv2d_cost((12, 12, 3), 0, 5), "filters"),
    (lambda: costs.conv2d_cost((12, 12), 8, 3), r"input_shape must be \(height, width, channels\)"),
    (lambda: costs.conv2d_cost((12, 12, 3), 8, 3, stride=0), "stride must be a positive integer"),
    (lambda: costs.conv2d_cost((4, 4, 3), 8, 5), "larger than the padded input"),
    (lambda: costs.conv_output_size(4, 7, 1, 1), r"larger than the padded input \(4 \+ 2 padding = 6\)"),
    (lambda: costs.conv2d_cost((12, 12, 3), 8, 3, padding="full"), "padding must be"),
    (lambda: costs.conv2d_cost((12, 12, 3), 8, 3, padding=-1), "non-negative"),
    (lambda: costs.depthwise_conv2d_cost((12, 12, 3), 3, out_channels=8), "not divisible by 3"),
    (lambda: costs.conv2d_cost((12, 12, 3), 8, 3, groups=2), "must divide both"),
    (lambda: costs.dense_cost(0, 10), "n_in must be a positive integer"),
    (lambda: costs.time_conv_layers([(7, 8, 8)], repeats=0), "repeats must be a positive integer"),
])
def test_impossible_shapes_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------
# Keras models: every layer's count_params, the paper's totals
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet_rows():
    import keras

    return costs.model_costs(keras.applications.MobileNet(weights=None))


@pytest.fixture(scope="module")
def vgg16_rows():
    import keras

    rows = costs.model_costs(keras.applications.VGG16(weights=None))
    keras.backend.clear_session()
    return rows


@pytest.mark.parametrize("rows_fixture", ["mobilenet_rows", "vgg16_rows"])
def test_every_layer_count_params_matches(request, rows_fixture):
    rows = request.getfixturevalue(rows_fixture)
    assert len(rows) > 20
    for row in rows:
        assert row.params == row.keras_params, row
    priced = [r for r in rows if r.params]
    assert priced and all(r.kind in ("conv", "dw", "pw", "fc", "bn") for r in priced)


def test_mobilenet_totals_match_paper(mobilenet_rows):
    totals = costs.cost_totals(mobilenet_rows)
    assert totals["mult_adds"] == 568_740_352
    assert totals["params"] == 4_210_088
    assert totals["bn_params"] == 43_776 == 4 * 10_944
    assert totals["keras_params"] == 4_253_864 == totals["params"] + totals["bn_params"]


def test_mobilenet_table1_rows(mobilenet_rows):
    table = costs.paper_table1(mobilenet_rows)
    assert len(table) == 30  # 1 conv + 13 x (dw + pw) + pool + FC + softmax
    first, dw2 = table[0], table[3]
    assert (first.type_stride, first.filter_shape, first.input_shape) == ("Conv / s2", "3x3x3x32", (224, 224, 3))
    # the stride-2 depthwise layers read the block input before Keras's ZeroPadding2D
    assert (dw2.type_stride, dw2.filter_shape, dw2.input_shape) == ("Conv dw / s2", "3x3x64 dw", (112, 112, 64))
    assert [r.type_stride for r in table[-3:]] == ["Avg Pool / s1", "FC / s1", "Softmax / s1"]
    assert table[-3].filter_shape == "Pool 7x7" and table[-2].filter_shape == "1024x1000"


def test_mobilenet_table2_shares(mobilenet_rows):
    shares = costs.share_by_kind(mobilenet_rows)
    assert round(100 * shares["pw"]["mult_adds_share"], 2) == 94.86
    assert round(100 * shares["pw"]["params_share"], 2) == 74.57
    assert round(100 * shares["dw"]["mult_adds_share"], 2) == 3.06
    assert round(100 * shares["fc"]["mult_adds_share"], 2) == 0.18
    # the paper's 74.59% counts the FC layer without its 1,000 biases
    no_fc_bias = costs.cost_totals(mobilenet_rows)["params"] - 1_000
    assert round(100 * shares["pw"]["params"] / no_fc_bias, 2) == 74.59


def test_vgg16_against_mobilenet(vgg16_rows, mobilenet_rows):
    vgg, mob = costs.cost_totals(vgg16_rows), costs.cost_totals(mobilenet_rows)
    assert vgg["params"] == 138_357_544
    assert vgg["mult_adds"] == 15_470_264_320
    assert round(vgg["params"] / mob["params"]) == 33 and int(vgg["params"] / mob["params"]) == 32
    assert round(vgg["mult_adds"] / mob["mult_adds"]) == 27


@pytest.mark.parametrize("alpha,size,mult_adds,params", [
    (0.75, 224, 325_400_448, 2_569_144),
    (0.25, 224, 41_030_272, 464_600),
    (1.0, 128, 186_400_768, 4_210_088),
])
def test_width_and_resolution_multipliers(alpha, size, mult_adds, params):
    import keras

    model = keras.applications.MobileNet(weights=None, alpha=alpha, input_shape=(size, size, 3))
    rows = costs.model_costs(model)
    assert all(r.params == r.keras_params for r in rows)
    totals = costs.cost_totals(rows)
    assert (totals["mult_adds"], totals["params"]) == (mult_adds, params)


def test_model_costs_handles_dense_and_separable_layers():
    import keras

    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.SeparableConv2D(8, 3, padding="same"),
        keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    rows = costs.model_costs(model)
    assert all(r.params == r.keras_params for r in rows)
    sep = rows[0]
    assert sep.mult_adds == (9 * 3 + 3 * 8) * 16 * 16
    assert rows[-1].mult_adds == 7 * 7 * 16 * 10


def test_timing_reports_ratios():
    (row,) = costs.time_conv_layers([(8, 16, 32)], warmup=1, repeats=2)
    assert row["standard_ms"] > 0 and row["separable_ms"] > 0
    assert row["measured_speedup"] == pytest.approx(row["standard_ms"] / row["separable_ms"])
    assert row["theoretical_ratio"] == pytest.approx(1 / (1 / 32 + 1 / 9))


def test_widget_summary_and_explorer():
    from tlcourse import cost_widgets

    text = cost_widgets.cost_summary(5, 3, 256, 8)
    assert "1,228,800" in text and "53,952" in text and "22.78x" in text
    explorer = cost_widgets.separable_cost_explorer()
    assert [w.description for w in explorer.children[:4]] == ["D_K", "M", "N", "D_F"]
