"""What a convolution costs, counted exactly and timed (notebook 06).

A *mult-add* is one multiply-accumulate (the MobileNet paper's unit); a kernel costs its full
D_K x D_K at every output position, even where 'same' padding feeds it zeros; pooling, BatchNorm
(folded into the convolution at inference), ReLU and softmax cost none.
"""

import statistics
import timeit
from dataclasses import dataclass
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# 1. The derivation, in the lecture's symbols (D_F: positions per side the kernel visits)


def standard_mult_adds(d_k: int, m: int, n: int, d_f: int) -> int:
    """Standard convolution, N kernels of D_K x D_K x M: ``D_K * D_K * M * N * D_F * D_F``."""
    return d_k * d_k * m * n * d_f * d_f


def depthwise_mult_adds(d_k: int, m: int, d_f: int) -> int:
    """Depthwise convolution, one D_K x D_K filter per channel: ``D_K * D_K * M * D_F * D_F``."""
    return d_k * d_k * m * d_f * d_f


def pointwise_mult_adds(m: int, n: int, d_f: int) -> int:
    """Pointwise (1x1) convolution mixing M channels into N: ``M * N * D_F * D_F``."""
    return m * n * d_f * d_f


def separable_mult_adds(d_k: int, m: int, n: int, d_f: int) -> int:
    """Depthwise-separable convolution: depthwise + pointwise."""
    return depthwise_mult_adds(d_k, m, d_f) + pointwise_mult_adds(m, n, d_f)


def separable_ratio(d_k: int, n: int) -> Fraction:
    """Separable / standard mult-adds, exactly: ``1/N + 1/D_K**2`` (M and D_F cancel)."""
    return Fraction(1, n) + Fraction(1, d_k * d_k)


# 2. Real layers: stride, padding, groups


@dataclass(frozen=True)
class Cost:
    """A layer's mult-adds, parameters and output shape ``(h, w, c)``; ``a + b`` is a then b."""

    mult_adds: int
    params: int
    output_shape: tuple

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            self.mult_adds + other.mult_adds, self.params + other.params, other.output_shape
        )


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding="valid", dilation: int = 1, *, axis: int = 0
) -> int:
    """Positions a kernel visits along one axis; ValueError when it does not fit. padding:

    'valid' (none), 'same' (TensorFlow's: ``ceil(size / stride)``), an int on both sides, or
    ``((top, bottom), (left, right))`` as Keras's ZeroPadding2D holds it (``axis`` picks the pair).
    """
    if padding == "same":
        return -(-size // stride)
    padding = 0 if padding == "valid" else padding
    pair = padding[axis] if isinstance(padding, (tuple, list)) else (padding, padding)
    if not all(isinstance(p, int) and p >= 0 for p in pair):
        raise ValueError(
            f"padding must be 'valid', 'same', an int >= 0 or ((top, bottom), "
            f"(left, right)), got {padding!r}."
        )
    pads = sum(pair)
    span = dilation * (kernel - 1) + 1
    if span > size + pads:
        raise ValueError(
            f"a kernel spanning {span} is larger than the padded input "
            f"({size} + {pads} padding = {size + pads})."
        )
    return (size + pads - span) // stride + 1


def conv2d_cost(
    input_shape,
    filters: int,
    kernel,
    stride=1,
    padding="valid",
    *,
    bias: bool = True,
    groups: int = 1,
    dilation=1,
) -> Cost:
    """A Keras ``Conv2D`` on an ``(h, w, M)`` input:

    ``kh * kw * M/groups * N`` per position. filters: N. kernel, stride, dilation: an int or an (h,
    w) pair. padding: as :func:`conv_output_size`. bias: one per filter. groups: each filter sees
    ``M / groups`` channels (a depthwise convolution has ``groups = M``).
    """
    h, w, m = input_shape
    if m % groups or filters % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels ({m}) and "
            f"the filters ({filters})."
        )

    def pair(value):  # an int means the same along both axes
        return (value, value) if isinstance(value, int) else tuple(value)

    k, s, d = pair(kernel), pair(stride), pair(dilation)
    out = tuple(
        conv_output_size(size, k[i], s[i], padding, d[i], axis=i) for i, size in enumerate((h, w))
    )
    weights = k[0] * k[1] * (m // groups) * filters
    return Cost(weights * out[0] * out[1], weights + filters * bias, out + (filters,))


def depthwise_conv2d_cost(
    input_shape,
    kernel,
    stride=1,
    padding="valid",
    *,
    depth_multiplier: int = 1,
    bias: bool = True,
    dilation=1,
) -> Cost:
    """A Keras ``DepthwiseConv2D``: :func:`conv2d_cost` with one group per input channel."""
    m = input_shape[2]
    return conv2d_cost(
        input_shape,
        m * depth_multiplier,
        kernel,
        stride,
        padding,
        bias=bias,
        groups=m,
        dilation=dilation,
    )


def separable_conv2d_cost(
    input_shape, filters: int, kernel, stride=1, padding="valid", *, bias: bool = True
) -> Cost:
    """MobileNet's pair: depthwise, then pointwise (1x1) to ``filters``; ``bias`` on both."""
    depthwise = depthwise_conv2d_cost(input_shape, kernel, stride, padding, bias=bias)
    return depthwise + conv2d_cost(depthwise.output_shape, filters, 1, bias=bias)


# 3. A Keras model, layer by layer (paper Tables 1, 2, 6, 7, 8)

TABLE1_LABELS = {
    "conv": "Conv",
    "pw": "Conv",
    "dw": "Conv dw",
    "sep": "Conv sep",
    "fc": "FC",
    "pool": "Avg Pool",
    "maxpool": "Max Pool",
    "softmax": "Softmax",
}


def _layer_row(layer, L, producers: dict) -> dict:
    """One row of :func:`model_costs`: the layer priced by the functions above.

    ``L``: ``keras.layers``; ``producers``: which layer computed each tensor (by ``id``).
    """
    inputs = layer.input if isinstance(layer.input, list) else [layer.input]  # Add: several
    out = tuple(layer.output.shape[1:])
    source = tuple(inputs[0].shape[1:]) if inputs else out  # InputLayer: none
    kh, kw = getattr(layer, "kernel_size", (1, 1))
    conv = {}
    if hasattr(layer, "kernel_size"):
        conv = dict(stride=layer.strides, padding=layer.padding, dilation=layer.dilation_rate)
        feeder = producers.get(id(layer.input))
        if isinstance(feeder, L.ZeroPadding2D) and layer.padding == "valid":  # the block input
            source = tuple(feeder.input.shape[1:])
            conv["padding"] = feeder.padding

    if isinstance(layer, L.SeparableConv2D):  # Keras's has no depthwise bias
        dw = depthwise_conv2d_cost(
            source, layer.kernel_size, bias=False, depth_multiplier=layer.depth_multiplier, **conv
        )
        cost = dw + conv2d_cost(dw.output_shape, layer.filters, 1, bias=layer.use_bias)
        kind = "sep"
        filt = f"{kh}x{kw}x{source[2]} dw + 1x1x{dw.output_shape[2]}x{layer.filters}"
    elif isinstance(layer, L.DepthwiseConv2D):
        cost = depthwise_conv2d_cost(
            source,
            layer.kernel_size,
            bias=layer.use_bias,
            depth_multiplier=layer.depth_multiplier,
            **conv,
        )
        kind = "dw"
        filt = f"{kh}x{kw}x{source[2]} dw"
    elif isinstance(layer, L.Conv2D):
        cost = conv2d_cost(
            source,
            layer.filters,
            layer.kernel_size,
            bias=layer.use_bias,
            groups=layer.groups,
            **conv,
        )
        if (kh, kw) == source[:2] == (1, 1):
            kind = "fc"  # a 1x1 convolution on a 1x1 map: MobileNet's classifier
            filt = f"{source[2]}x{layer.filters}"
        else:
            kind = "pw" if (kh, kw) == (1, 1) else "conv"
            filt = f"{kh}x{kw}x{source[2] // layer.groups}x{layer.filters}"
    elif isinstance(layer, L.Dense):  # at every position of its input
        n_in = source[-1]
        units = layer.units
        positions = int(np.prod(source[:-1]))
        cost = Cost(
            n_in * units * positions, n_in * units + units * layer.use_bias, source[:-1] + (units,)
        )
        kind = "fc"
        filt = f"{n_in}x{units}"
    elif isinstance(layer, L.BatchNormalization):  # gamma, beta, moving mean and variance
        channels = source[layer.axis - 1 if layer.axis > 0 else layer.axis]
        cost = Cost(0, channels * (2 + layer.center + layer.scale), out)
        kind = "bn"
        filt = ""
    elif layer.count_params() == 0:  # pooling, softmax, padding, ReLU, reshape...: free
        cost = Cost(0, 0, out)
        kind = "other"
        filt = ""
        name = type(layer).__name__
        activation = getattr(getattr(layer, "activation", None), "__name__", "")
        if "Pooling" in name:
            window = getattr(layer, "pool_size", source)
            kind = "maxpool" if "Max" in name else "pool"
            filt = f"Pool {window[0]}x{window[1]}"
        elif "Softmax" in name or activation == "softmax":
            kind = "softmax"
            filt = "Classifier"
    else:
        raise NotImplementedError(
            f"{layer.name}: no cost function for a {type(layer).__name__} "
            f"with {layer.count_params()} parameters."
        )
    if tuple(cost.output_shape) != out:
        raise RuntimeError(f"{layer.name}: computed output {cost.output_shape}, Keras says {out}.")
    return dict(
        layer=layer.name,
        kind=kind,
        stride=getattr(layer, "strides", (1, 1))[0],
        filter_shape=filt,
        input_size=source,
        mult_adds=cost.mult_adds,
        params=cost.params,
        keras_params=layer.count_params(),
    )


def model_costs(model) -> pd.DataFrame:
    """One row per layer of a built Keras ``model``, indexed by layer name, priced as above.

    Columns: kind (conv, dw, pw, sep, fc, pool, maxpool, softmax, bn, other), stride, filter_shape,
    input_size (before a ZeroPadding2D feeding the layer, as the paper prints it), mult_adds, params
    and keras_params (``layer.count_params()``, to check params against).
    """
    import keras

    # which layer computed each tensor: a layer's input is the output of the layer before it
    producers = {id(layer.output): layer for layer in model.layers}
    rows = [_layer_row(layer, keras.layers, producers) for layer in model.layers]
    return pd.DataFrame(rows).set_index("layer")


def cost_totals(rows: pd.DataFrame) -> pd.Series:
    """Sums over :func:`model_costs` ``rows``.

    Mult_adds; params without BatchNorm (as the paper counts); bn_params (4 per channel);
    keras_params (what ``model.count_params()`` says).
    """
    bn = rows.kind == "bn"
    return pd.Series(
        {
            "mult_adds": rows.mult_adds.sum(),
            "params": rows.params[~bn].sum(),
            "bn_params": rows.params[bn].sum(),
            "keras_params": rows.keras_params.sum(),
        }
    )


def share_by_kind(rows: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 2 from :func:`model_costs` ``rows``.

    Mult-adds and parameters (BatchNorm left out) per kind of layer, and their shares of the total.
    """
    by_kind = rows[rows.kind != "bn"].groupby("kind")[["mult_adds", "params"]].sum()
    by_kind = by_kind[by_kind.sum(axis=1) > 0]
    return by_kind.join((by_kind / by_kind.sum()).add_suffix("_share"))


def paper_table1(rows: pd.DataFrame) -> pd.DataFrame:
    """The MobileNet paper's Table 1 from :func:`model_costs` ``rows``, written for reading."""
    t = rows[rows.kind.isin(list(TABLE1_LABELS))]
    return pd.DataFrame(
        {
            "Type / stride": t.kind.map(TABLE1_LABELS) + " / s" + t.stride.astype(str),
            "Filter shape": t.filter_shape,
            "Input size": t.input_size.map(lambda s: "x".join(map(str, s))),
            "Mult-adds": t.mult_adds.map("{:,}".format),
            "Params": t.params.map("{:,}".format),
        }
    )


# 4. Measured time, and why it differs from the count

#: The stride-1 depthwise-separable layers of MobileNet-224 as (D_F, M, N).
MOBILENET_LAYER_SHAPES = [
    (112, 32, 64),
    (56, 128, 128),
    (28, 256, 256),
    (14, 512, 512),
    (7, 1024, 1024),
]


def arithmetic_intensity(d_k: int, m: int, n: int, d_f: int, bytes_per_value: int = 4) -> dict:
    """Mult-adds per byte moved, for the standard, depthwise and pointwise convolution.

    The bytes are the least a stride-1 'same' layer must move: input, weights and output, each once.
    """
    x, y, w = d_f * d_f * m, d_f * d_f * n, d_k * d_k * m  # input, output, depthwise weights
    return {
        "standard": standard_mult_adds(d_k, m, n, d_f) / (x + w * n + y) / bytes_per_value,
        "depthwise": depthwise_mult_adds(d_k, m, d_f) / (x + w + x) / bytes_per_value,
        "pointwise": pointwise_mult_adds(m, n, d_f) / (x + m * n + y) / bytes_per_value,
    }


def _conv_functions(x, standard, depthwise, pointwise) -> dict:
    """The four convolutions of :func:`time_conv_layers` on input ``x``, as compiled functions."""
    import tensorflow as tf

    strides = [1, 1, 1, 1]
    ops = {
        "standard": lambda: tf.nn.conv2d(x, standard, 1, "SAME"),
        "separable": lambda: tf.nn.separable_conv2d(x, depthwise, pointwise, strides, "SAME"),
        "depthwise": lambda: tf.nn.depthwise_conv2d(x, depthwise, strides, "SAME"),
        "pointwise": lambda: tf.nn.conv2d(x, pointwise, 1, "SAME"),
    }
    return {name: tf.function(lambda op=op: tf.reduce_sum(op())) for name, op in ops.items()}


def time_conv_layers(
    shapes=MOBILENET_LAYER_SHAPES,
    *,
    d_k: int = 3,
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Time a standard and a depthwise-separable convolution, one row per ``(D_F, M, N)``.

    Median milliseconds of a standard ``d_k x d_k`` convolution, a depthwise-separable one and its
    two halves (stride 1, 'same', float32, ``batch`` images; compiled TensorFlow functions run in
    turn, ``warmup`` times, then ``repeats`` times), with the speed-up against the mult-add ratio,
    the depthwise half's shares, and GMAC/s.
    """
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(seed)
    rows = []
    for d_f, m, n in shapes:
        x = rng.normal((batch, d_f, d_f, m))
        kernels = {
            "standard": rng.normal((d_k, d_k, m, n)),
            "depthwise": rng.normal((d_k, d_k, m, 1)),
            "pointwise": rng.normal((1, 1, m, n)),
        }
        fns = _conv_functions(x, **kernels)
        seconds = {name: [] for name in fns}
        for _ in range(warmup + repeats):
            for name, fn in fns.items():
                seconds[name].append(timeit.timeit(lambda fn=fn: fn().numpy(), number=1))
        rows.append(
            {
                "layer": f"{d_f}x{d_f}x{m} -> {n}",
                **{f"{k}_ms": 1e3 * statistics.median(v[warmup:]) for k, v in seconds.items()},
                "standard_madds": batch * standard_mult_adds(d_k, m, n, d_f),
                "separable_madds": batch * separable_mult_adds(d_k, m, n, d_f),
                "depthwise_madds": batch * depthwise_mult_adds(d_k, m, d_f),
            }
        )
    t = pd.DataFrame(rows).set_index("layer")
    t["measured_speedup"] = t.standard_ms / t.separable_ms
    t["theoretical_ratio"] = t.standard_madds / t.separable_madds
    t["depthwise_time_share"] = t.depthwise_ms / (t.depthwise_ms + t.pointwise_ms)
    t["depthwise_madds_share"] = t.depthwise_madds / t.separable_madds
    for kind in ("standard", "separable", "depthwise"):
        t[f"{kind}_gmacs_per_s"] = t[f"{kind}_madds"] / t[f"{kind}_ms"] / 1e6
    return t


# 5. Figures and the explorer's table


def plot_separable_ratio(kernel_sizes=(3, 5, 7), mark=None, ax=None):
    """Standard / separable mult-adds, ``1 / (1/N + 1/D_K**2)``, against N.

    Returns the Figure. kernel_sizes: one line per D_K, its ceiling D_K**2 dashed. mark: an ``(N,
    D_K)`` to dot.
    """
    ns = np.unique(np.geomspace(1, 2048, 200).astype(int))
    fig, ax = plt.subplots() if ax is None else (ax.figure, ax)
    for i, d_k in enumerate(kernel_sizes):
        ax.plot(ns, 1 / (1 / ns + 1 / d_k**2), color=f"C{i}", label=f"$D_K$ = {d_k}")
        ax.axhline(d_k**2, color=f"C{i}", linestyle="--", linewidth=0.8)
    if mark is not None:
        n, d_k = mark
        ax.plot([n], [1 / (1 / n + 1 / d_k**2)], "ko", label=f"N = {n}, $D_K$ = {d_k}")
    ax.set_xscale("log", base=2)
    ax.set(
        xlabel="output channels N",
        ylabel="standard / separable mult-adds",
        title=r"Saving of a depthwise-separable convolution ($D_K^2$ dashed)",
    )
    ax.legend()
    return fig


def plot_conv_speedups(timings: pd.DataFrame, ax=None):
    """Bars of the measured speed-up of separable convolution beside the mult-add ratio.

    ``timings``: what :func:`time_conv_layers` returns. Returns the Figure.
    """
    bars = (
        timings[["theoretical_ratio", "measured_speedup"]]
        .set_axis(["theory (mult-adds)", "measured (time)"], axis=1)
        .rename(lambda s: s.replace(" -> ", "\n-> "))
    )
    ax = bars.plot.bar(ax=ax, rot=0, ylim=(0, 1.3 * bars.to_numpy().max()))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set(
        xlabel="",
        ylabel="standard / separable",
        title="3x3 convolution: how much faster separable is, on paper and measured",
    )
    ax.legend(loc="upper left", ncols=2)
    return ax.figure


def cost_summary(d_k: int, m: int, n: int, d_f: int) -> pd.DataFrame:
    """The explorer's table: mult-adds and weights (no biases) of each convolution, the saving."""
    madds = [
        standard_mult_adds(d_k, m, n, d_f),
        depthwise_mult_adds(d_k, m, d_f),
        pointwise_mult_adds(m, n, d_f),
        separable_mult_adds(d_k, m, n, d_f),
    ]
    weights = [d_k * d_k * m * n, d_k * d_k * m, m * n, d_k * d_k * m + m * n]
    index = ["standard", "depthwise", "pointwise", "separable"]
    table = pd.DataFrame({"mult-adds": madds, "weights": weights}, index).map("{:,}".format)
    table.loc["standard / separable"] = f"{float(1 / separable_ratio(d_k, n)):.2f}x"
    return table.rename_axis(f"D_K={d_k}  M={m}  N={n}  D_F={d_f}")
