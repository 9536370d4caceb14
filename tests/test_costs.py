"""Notebook 06's cost functions.

The lecture's and the paper's figures, exactly; Keras's own counts for every layer; stride and
padding; bad shapes refused.
"""

from fractions import Fraction

import keras
import pytest

import tlcourse as tl

costs = tl.costs


def _architecture(build, **kwargs):
    """A Keras application's layers, weights left unallocated (shapes suffice to count)."""
    with keras.StatelessScope(initialize_variables=False):
        return build(weights=None, **kwargs)


# The derivation and the lecture's worked example (12x12x3, 5x5, 256 filters, no padding)


def test_formulas_in_lecture_symbols():
    assert costs.standard_mult_adds(3, 32, 64, 112) == 3 * 3 * 32 * 64 * 112 * 112
    assert costs.depthwise_mult_adds(3, 32, 112) == 3 * 3 * 32 * 112 * 112
    assert costs.pointwise_mult_adds(32, 64, 112) == 32 * 64 * 112 * 112
    assert costs.separable_mult_adds(3, 32, 64, 112) == (3 * 3 * 32 + 32 * 64) * 112 * 112


@pytest.mark.parametrize("d_k,m,n,d_f", [(3, 32, 64, 112), (5, 3, 256, 8), (7, 17, 5, 3)])
def test_ratio_is_one_over_n_plus_one_over_dk_squared(d_k, m, n, d_f):
    ratio = Fraction(
        costs.separable_mult_adds(d_k, m, n, d_f), costs.standard_mult_adds(d_k, m, n, d_f)
    )
    assert ratio == costs.separable_ratio(d_k, n) == Fraction(1, n) + Fraction(1, d_k**2)


def test_three_by_three_saves_eight_to_nine_times():
    assert [
        round(float(1 / costs.separable_ratio(3, n)), 2) for n in (64, 128, 256, 512, 1024)
    ] == [7.89, 8.41, 8.69, 8.84, 8.92]


def test_worked_example_exact():
    x = (12, 12, 3)
    std = costs.conv2d_cost(x, 256, 5, padding="valid")
    sep = costs.separable_conv2d_cost(x, 256, 5, padding="valid")
    assert std.output_shape == sep.output_shape == (8, 8, 256)
    assert (std.mult_adds, sep.mult_adds) == (1_228_800, 53_952)
    assert (std.params, sep.params) == (19_456, 1_102)
    assert Fraction(std.mult_adds, sep.mult_adds) == Fraction(6400, 281)  # 1 / (1/256 + 1/25)
    assert costs.conv2d_cost(x, 256, 5, bias=False).params == 19_200
    assert costs.separable_conv2d_cost(x, 256, 5, bias=False).params == 75 + 768
    # the lecture's "~2.8 M" counts 12x12 positions
    assert costs.standard_mult_adds(5, 3, 256, 12) == 2_764_800


def test_parts_of_the_worked_example_add_up():
    dw = costs.depthwise_conv2d_cost((12, 12, 3), 5)
    pw = costs.conv2d_cost(dw.output_shape, 256, 1)
    assert (dw.mult_adds, dw.params, dw.output_shape) == (4_800, 78, (8, 8, 3))
    assert (pw.mult_adds, pw.params, pw.output_shape) == (49_152, 1_024, (8, 8, 256))
    both = dw + pw
    assert (both.mult_adds, both.params, both.output_shape) == (53_952, 1_102, (8, 8, 256))


# Stride and padding


@pytest.mark.parametrize(
    "size,kernel,stride,padding,expected",
    [
        (224, 3, 2, "same", 112),
        (112, 3, 1, "same", 112),
        (12, 5, 1, "valid", 8),
        (113, 3, 2, "valid", 56),
        (112, 3, 2, ((0, 1), (0, 1)), 56),
        (7, 7, 1, "valid", 1),
        (5, 3, 1, 1, 5),
        (6, 3, 2, "same", 3),
        (7, 3, 2, "same", 4),
        (7, 5, 2, "valid", 2),
        (1, 5, 1, "same", 1),
        (224, 2, 2, "valid", 112),
    ],
)
def test_conv_output_size(size, kernel, stride, padding, expected):
    assert costs.conv_output_size(size, kernel, stride, padding) == expected


def test_stride_two_counts_positions_on_the_output_grid():
    s1 = costs.conv2d_cost((224, 224, 3), 32, 3, 1, "same", bias=False)
    s2 = costs.conv2d_cost((224, 224, 3), 32, 3, 2, "same", bias=False)
    assert s2.output_shape == (112, 112, 32)
    assert s1.mult_adds == 4 * s2.mult_adds == 4 * 10_838_016
    assert s1.params == s2.params == 864
    odd = costs.separable_conv2d_cost((7, 7, 1024), 1024, 3, 2, "same")  # 'same' rounds up: 4x4
    assert odd.output_shape == (4, 4, 1024)
    assert odd.mult_adds == (9 * 1024 + 1024 * 1024) * 16


def test_depth_multiplier_and_groups():
    dw = costs.depthwise_conv2d_cost((10, 10, 4), 3, padding="same", depth_multiplier=2)
    assert (dw.output_shape, dw.params, dw.mult_adds) == ((10, 10, 8), 9 * 8 + 8, 9 * 8 * 100)
    grouped = costs.conv2d_cost((10, 10, 4), 8, 3, padding="same", groups=2, bias=False)
    assert grouped.params == 9 * 2 * 8


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: costs.conv2d_cost((4, 4, 3), 8, 5), "larger than the padded input"),
        (
            lambda: costs.conv_output_size(4, 7, 1, 1),
            r"larger than the padded input \(4 \+ 2 padding = 6\)",
        ),
        (lambda: costs.conv2d_cost((12, 12, 3), 8, 3, padding="full"), "padding must be"),
        (lambda: costs.conv2d_cost((12, 12, 3), 8, 3, padding=-1), "padding must be"),
        (lambda: costs.conv2d_cost((12, 12, 3), 8, 3, groups=2), "must divide both"),
    ],
)
def test_impossible_shapes_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# Keras models: every layer against count_params, the paper's totals and tables


@pytest.fixture(scope="module")
def mobilenet_rows():
    return costs.model_costs(_architecture(keras.applications.MobileNet))


@pytest.fixture(scope="module")
def vgg16_rows():
    return costs.model_costs(_architecture(keras.applications.VGG16))


@pytest.mark.parametrize("rows_fixture", ["mobilenet_rows", "vgg16_rows"])
def test_every_layer_agrees_with_count_params(request, rows_fixture):
    rows = request.getfixturevalue(rows_fixture)
    assert len(rows) > 20
    assert (rows.params == rows.keras_params).all(), rows[rows.params != rows.keras_params]
    assert set(rows.kind[rows.params > 0]) <= {"conv", "dw", "pw", "fc", "bn"}


def test_mobilenet_totals_match_paper(mobilenet_rows):
    totals = costs.cost_totals(mobilenet_rows)
    assert totals["mult_adds"] == 568_740_352
    assert totals["params"] == 4_210_088
    assert totals["bn_params"] == 43_776 == 4 * 10_944
    assert totals["keras_params"] == 4_253_864 == totals["params"] + totals["bn_params"]


def test_mobilenet_table1(mobilenet_rows):
    table = costs.paper_table1(mobilenet_rows)
    assert len(table) == 30  # 1 conv + 13 x (dw + pw) + pool + FC + softmax
    assert list(table.loc["conv1"]) == ["Conv / s2", "3x3x3x32", "224x224x3", "10,838,016", "864"]
    # the stride-2 depthwise layers read the block input, before Keras's ZeroPadding2D
    assert list(table.loc["conv_dw_2", ["Type / stride", "Filter shape", "Input size"]]) == [
        "Conv dw / s2",
        "3x3x64 dw",
        "112x112x64",
    ]
    # the lecture's (and paper's) "Conv dw / s2" at 7x7x1024 is stride 1 in the network
    assert list(table.loc["conv_dw_13", ["Type / stride", "Input size"]]) == [
        "Conv dw / s1",
        "7x7x1024",
    ]
    assert list(table["Type / stride"].iloc[-3:]) == ["Avg Pool / s1", "FC / s1", "Softmax / s1"]
    assert list(table["Filter shape"].iloc[-3:-1]) == ["Pool 7x7", "1024x1000"]


def test_mobilenet_table2_shares(mobilenet_rows):
    shares = costs.share_by_kind(mobilenet_rows)
    assert round(100 * shares.loc["pw", "mult_adds_share"], 2) == 94.86
    assert round(100 * shares.loc["pw", "params_share"], 2) == 74.57
    assert round(100 * shares.loc["dw", "mult_adds_share"], 2) == 3.06
    assert round(100 * shares.loc["fc", "mult_adds_share"], 2) == 0.18
    assert shares.mult_adds_share.sum() == pytest.approx(1.0)
    # the paper's 74.59% counts the FC layer without its 1,000 biases
    no_fc_bias = costs.cost_totals(mobilenet_rows)["params"] - 1_000
    assert round(100 * shares.loc["pw", "params"] / no_fc_bias, 2) == 74.59


def test_vgg16_against_mobilenet(vgg16_rows, mobilenet_rows):
    vgg, mob = costs.cost_totals(vgg16_rows), costs.cost_totals(mobilenet_rows)
    assert (vgg["params"], vgg["mult_adds"]) == (138_357_544, 15_470_264_320)
    assert round(vgg["params"] / mob["params"], 2) == 32.86
    assert round(vgg["mult_adds"] / mob["mult_adds"], 2) == 27.20
    assert list(costs.paper_table1(vgg16_rows).loc["block1_pool"])[:2] == [
        "Max Pool / s2",
        "Pool 2x2",
    ]


@pytest.mark.parametrize(
    "alpha,size,mult_adds,params",
    [
        (1.0, 224, 568_740_352, 4_210_088),
        (0.75, 224, 325_400_448, 2_569_144),
        (0.5, 224, 149_497_088, 1_320_648),
        (0.25, 224, 41_030_272, 464_600),
        (1.0, 192, 418_121_728, 4_210_088),
        (1.0, 160, 290_675_200, 4_210_088),
        (1.0, 128, 186_400_768, 4_210_088),
    ],
)
def test_width_and_resolution_multipliers(alpha, size, mult_adds, params):
    """Paper Tables 6 and 7 (notebook 08 reads the same counts)."""
    rows = costs.model_costs(
        _architecture(keras.applications.MobileNet, alpha=alpha, input_shape=(size, size, 3))
    )
    assert (rows.params == rows.keras_params).all()
    totals = costs.cost_totals(rows)
    assert (totals["mult_adds"], totals["params"]) == (mult_adds, params)


def test_model_costs_prices_separable_dense_and_free_layers():
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.SeparableConv2D(8, 3, padding="same"),
            keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2),
            keras.layers.BatchNormalization(center=False),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
            keras.layers.Softmax(),
        ]
    )
    rows = costs.model_costs(model)
    assert (rows.params == rows.keras_params).all()
    assert list(rows.kind) == ["sep", "dw", "bn", "other", "fc", "softmax"]
    assert rows.mult_adds.iloc[0] == (9 * 3 + 3 * 8) * 16 * 16
    assert rows.mult_adds.iloc[1] == 9 * 16 * 7 * 7
    assert rows.mult_adds.iloc[4] == 7 * 7 * 16 * 10
    assert costs.cost_totals(rows)["bn_params"] == 16 * 3


def test_layer_without_a_cost_function_is_refused():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2DTranspose(4, 3)])
    with pytest.raises(NotImplementedError, match="Conv2DTranspose"):
        costs.model_costs(model)


# Why time differs from the count


def test_arithmetic_intensity():
    ai = costs.arithmetic_intensity(3, 32, 64, 112)
    x, y = 112 * 112 * 32, 112 * 112 * 64
    assert ai["depthwise"] == pytest.approx(9 * 32 * 112 * 112 / (4 * (2 * x + 9 * 32)))
    assert ai["pointwise"] == pytest.approx(32 * 64 * 112 * 112 / (4 * (x + 32 * 64 + y)))
    assert round(ai["standard"], 1) == 47.3 and round(ai["depthwise"], 2) == 1.12


def test_timing_reports_ratios():
    timings = costs.time_conv_layers([(8, 16, 32)], warmup=1, repeats=2)
    row = timings.loc["8x8x16 -> 32"]
    assert row.standard_ms > 0 and row.separable_ms > 0
    assert row.measured_speedup == pytest.approx(row.standard_ms / row.separable_ms)
    assert row.theoretical_ratio == pytest.approx(1 / (1 / 32 + 1 / 9))
    assert row.depthwise_madds_share == pytest.approx(9 / (9 + 32))
    assert 0 < row.depthwise_time_share < 1
    fig = costs.plot_conv_speedups(timings)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["8x8x16\n-> 32"]


# The explorer


def test_cost_summary_and_explorer():
    summary = costs.cost_summary(5, 3, 256, 8)
    assert list(summary["mult-adds"]) == ["1,228,800", "4,800", "49,152", "53,952", "22.78x"]
    assert list(summary["weights"]) == ["19,200", "75", "768", "843", "22.78x"]
    explorer = tl.cost_explorer()
    assert [w.description for w in explorer.children[:4]] == ["D_K", "M", "N", "D_F"]
    mark = costs.plot_separable_ratio(mark=(64, 3)).axes[0].get_lines()[-1]
    assert mark.get_ydata()[0] == pytest.approx(1 / (1 / 64 + 1 / 9))
