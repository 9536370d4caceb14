"""Notebook 06: what a convolution costs, counted exactly and measured.

The functions come in the order the notebook uses them:

1. **The derivation** (lecture symbols ``d_k`` = D_K, ``m`` = M, ``n`` = N,
   ``d_f`` = D_F): :func:`standard_mult_adds`, :func:`depthwise_mult_adds`,
   :func:`pointwise_mult_adds`, :func:`separable_ratio` and the matching
   ``*_params`` functions.
2. **Layers with stride and padding** (the worked example, any real layer):
   :func:`conv_output_size`, :func:`conv2d_cost`, :func:`depthwise_conv2d_cost`,
   :func:`pointwise_conv2d_cost`, :func:`separable_conv2d_cost`,
   :func:`dense_cost`, :func:`batchnorm_params`; each returns a :class:`Cost`.
3. **A Keras model, layer by layer** (paper Tables 1, 2, 6, 7, 8):
   :func:`model_costs` walks the layers and prices each one with the functions
   above, :func:`cost_totals` and :func:`share_by_kind` add them up,
   :func:`paper_table1` keeps the rows the paper prints, :func:`format_table`
   prints them.
4. **Measured time** (the last section): :func:`time_conv_layers` times a
   standard 3x3 convolution against a depthwise-separable one of the same shape,
   :func:`format_timings` prints the result, :func:`arithmetic_intensity`
   explains the gap (mult-adds per byte moved).

Conventions, the paper's: a *mult-add* is one multiplication and one addition
(a multiply-accumulate); a kernel visiting a position costs its full
``D_K x D_K`` multiplications even where "same" padding makes some of the
inputs zeros; pooling, BatchNorm, ReLU and softmax cost no mult-adds (BatchNorm
folds into the convolution before it at inference). Sizes must be positive
integers; impossible shapes raise ``ValueError`` saying what is wrong.
"""
from __future__ import annotations

import os

# Quiet TensorFlow's C++ logging before anything imports it (keras is imported lazily).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import math  # noqa: E402
import numbers  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from fractions import Fraction  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


def _positive_int(value, what: str) -> int:
    """``value`` as an int, or ValueError when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    value = int(value)
    if value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value}.")
    return value


def _pair(value, what: str) -> tuple[int, int]:
    """An int or a (height, width) pair, as a validated pair of positive ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what} must be an int or a (height, width) pair, got {value!r}.")
        return _positive_int(value[0], f"{what}[0]"), _positive_int(value[1], f"{what}[1]")
    value = _positive_int(value, what)
    return value, value


def _input_shape(shape) -> tuple[int, int, int]:
    """A validated (height, width, channels) triple."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {shape!r}.")
    h, w, c = shape
    return (_positive_int(h, "input height"), _positive_int(w, "input width"),
            _positive_int(c, "input channels"))


# --------------------------------------------------------------------------
# 1. The derivation, in the lecture's symbols
# --------------------------------------------------------------------------


def standard_mult_adds(d_k: int, m: int, n: int, d_f: int) -> int:
    """Standard convolution: ``D_K * D_K * M * N * D_F * D_F`` mult-adds.

    N kernels of size D_K x D_K x M, each visiting D_F x D_F positions
    (``d_f`` = positions per side the kernel visits, i.e. the output size).
    """
    d_k, m = _positive_int(d_k, "D_K"), _positive_int(m, "M")
    n, d_f = _positive_int(n, "N"), _positive_int(d_f, "D_F")
    return d_k * d_k * m * n * d_f * d_f


def depthwise_mult_adds(d_k: int, m: int, d_f: int) -> int:
    """Depthwise convolution: ``D_K * D_K * M * D_F * D_F`` (one D_K x D_K filter per channel)."""
    d_k, m, d_f = _positive_int(d_k, "D_K"), _positive_int(m, "M"), _positive_int(d_f, "D_F")
    return d_k * d_k * m * d_f * d_f


def pointwise_mult_adds(m: int, n: int, d_f: int) -> int:
    """Pointwise (1x1) convolution: ``M * N * D_F * D_F``."""
    m, n, d_f = _positive_int(m, "M"), _positive_int(n, "N"), _positive_int(d_f, "D_F")
    return m * n * d_f * d_f


def separable_mult_adds(d_k: int, m: int, n: int, d_f: int) -> int:
    """Depthwise-separable = depthwise + pointwise mult-adds."""
    return depthwise_mult_adds(d_k, m, d_f) + pointwise_mult_adds(m, n, d_f)


def separable_ratio(d_k: int, n: int) -> Fraction:
    """Separable / standard mult-adds, exactly: ``1/N + 1/D_K**2`` (M and D_F cancel)."""
    d_k, n = _positive_int(d_k, "D_K"), _positive_int(n, "N")
    return Fraction(1, n) + Fraction(1, d_k * d_k)


def standard_params(d_k: int, m: int, n: int, *, bias: bool = True) -> int:
    """Standard convolution weights: ``D_K * D_K * M * N`` (``+ N`` biases)."""
    d_k, m, n = _positive_int(d_k, "D_K"), _positive_int(m, "M"), _positive_int(n, "N")
    return d_k * d_k * m * n + (n if bias else 0)


def depthwise_params(d_k: int, m: int, *, bias: bool = True, depth_multiplier: int = 1) -> int:
    """Depthwise weights: ``D_K * D_K * M`` (times the depth multiplier; ``+`` one bias per output)."""
    d_k, m = _positive_int(d_k, "D_K"), _positive_int(m, "M")
    out = m * _positive_int(depth_multiplier, "depth_multiplier")
    return d_k * d_k * out + (out if bias else 0)


def pointwise_params(m: int, n: int, *, bias: bool = True) -> int:
    """Pointwise weights: ``M * N`` (``+ N`` biases)."""
    return standard_params(1, m, n, bias=bias)


def separable_params(d_k: int, m: int, n: int, *, bias: bool = True) -> int:
    """Depthwise + pointwise weights, each with its biases when ``bias``."""
    return depthwise_params(d_k, m, bias=bias) + pointwise_params(m, n, bias=bias)


# --------------------------------------------------------------------------
# 2. Real layers: stride, padding, non-square shapes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """What one layer costs: mult-adds, parameters and the (h, w, c) it outputs."""

    mult_adds: int
    params: int
    output_shape: tuple

    def __add__(self, other: "Cost") -> "Cost":
        """Two layers in sequence: costs add, the output is the second one's."""
        return Cost(self.mult_adds + other.mult_adds, self.params + other.params,
                    other.output_shape)


def _padding_amounts(padding, size: int, kernel: int, stride: int, dilation: int, axis: int):
    """(before, after) zeros on one axis for 'valid', 'same', an int or ((t, b), (l, r))."""
    span = dilation * (kernel - 1) + 1
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return 0, 0
        if mode == "same":  # TensorFlow's rule: output = ceil(size / stride)
            out = -(-size // stride)
            total = max((out - 1) * stride + span - size, 0)
            return total // 2, total - total // 2
        raise ValueError(f"padding must be 'valid', 'same', an int or ((top, bottom), "
                         f"(left, right)), got {padding!r}.")
    if isinstance(padding, bool):
        raise ValueError(f"padding must be 'valid', 'same' or zeros to add, got {padding!r}.")
    if isinstance(padding, int):
        if padding < 0:
            raise ValueError(f"padding must be non-negative, got {padding}.")
        return padding, padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        side = padding[axis]
        if isinstance(side, int) and not isinstance(side, bool):
            side = (side, side)
        if (isinstance(side, (tuple, list)) and len(side) == 2
                and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in side)):
            return int(side[0]), int(side[1])
    raise ValueError(f"padding must be 'valid', 'same', an int or ((top, bottom), "
                     f"(left, right)) of non-negative ints, got {padding!r}.")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding="valid",
                     dilation: int = 1, *, axis: int = 0) -> int:
    """Output positions along one axis: ``(size + pads - span) // stride + 1``.

    ``span = dilation * (kernel - 1) + 1``. ``padding`` is ``'valid'`` (none),
    ``'same'`` (TensorFlow's: output ``ceil(size / stride)``), an int, or
    ``((top, bottom), (left, right))`` (``axis`` 0 reads the first pair).
    Raises ValueError when the kernel is larger than the padded input.
    """
    size = _positive_int(size, "input size")
    kernel = _positive_int(kernel, "kernel size")
    stride = _positive_int(stride, "stride")
    dilation = _positive_int(dilation, "dilation")
    before, after = _padding_amounts(padding, size, kernel, stride, dilation, axis)
    padded = size + before + after
    span = dilation * (kernel - 1) + 1
    if span > padded:
        raise ValueError(f"kernel of size {kernel} (span {span}) is larger than the padded "
                         f"input ({size} + {before + after} padding = {padded}).")
    return (padded - span) // stride + 1


def _output_hw(h, w, kernel, stride, padding, dilation):
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    return (conv_output_size(h, kh, sh, padding, dh, axis=0),
            conv_output_size(w, kw, sw, padding, dw, axis=1), kh, kw)


def conv2d_cost(input_shape, filters: int, kernel, stride=1, padding="valid", *,
                bias: bool = True, groups: int = 1, dilation=1) -> Cost:
    """A standard (Keras ``Conv2D``) layer on an ``(h, w, M)`` input with N ``filters``.

    Mult-adds ``kh * kw * (M / groups) * N * out_h * out_w``; parameters
    ``kh * kw * (M / groups) * N (+ N)``. With ``kernel=5, padding='valid'`` on
    12x12x3 and 256 filters this is the lecture's worked example.
    """
    h, w, m = _input_shape(input_shape)
    n = _positive_int(filters, "filters (N)")
    groups = _positive_int(groups, "groups")
    if m % groups or n % groups:
        raise ValueError(f"groups={groups} must divide both the input channels ({m}) "
                         f"and the filters ({n}).")
    out_h, out_w, kh, kw = _output_hw(h, w, kernel, stride, padding, dilation)
    weights = kh * kw * (m // groups) * n
    return Cost(mult_adds=weights * out_h * out_w,
                params=weights + (n if bias else 0),
                output_shape=(out_h, out_w, n))


def pointwise_conv2d_cost(input_shape, filters: int, *, bias: bool = True) -> Cost:
    """A 1x1 convolution: ``M * N`` mult-adds per position, ``M * N (+ N)`` parameters."""
    return conv2d_cost(input_shape, filters, 1, 1, "valid", bias=bias)


def depthwise_conv2d_cost(input_shape, kernel, stride=1, padding="valid", *,
                          depth_multiplier: int = 1, out_channels: int | None = None,
                          bias: bool = True, dilation=1) -> Cost:
    """A depthwise (Keras ``DepthwiseConv2D``) layer: one ``kh x kw`` filter per channel.

    ``out_channels`` (optional) must be a multiple of the input channels M; it
    sets the depth multiplier. Mult-adds ``kh * kw * M * dm * out_h * out_w``;
    parameters ``kh * kw * M * dm (+ M * dm)``.
    """
    h, w, m = _input_shape(input_shape)
    dm = _positive_int(depth_multiplier, "depth_multiplier")
    if out_channels is not None:
        out_channels = _positive_int(out_channels, "out_channels")
        if out_channels % m:
            raise ValueError(f"a depthwise convolution maps each of the {m} input channels to "
                             f"a whole number of outputs: out_channels={out_channels} is not "
                             f"divisible by {m}.")
        dm = out_channels // m
    out_h, out_w, kh, kw = _output_hw(h, w, kernel, stride, padding, dilation)
    weights = kh * kw * m * dm
    return Cost(mult_adds=weights * out_h * out_w,
                params=weights + (m * dm if bias else 0),
                output_shape=(out_h, out_w, m * dm))


def separable_conv2d_cost(input_shape, filters: int, kernel, stride=1, padding="valid", *,
                          depth_multiplier: int = 1, bias: bool = True,
                          depthwise_bias: bool | None = None, dilation=1) -> Cost:
    """Depthwise then pointwise: the sum of :func:`depthwise_conv2d_cost` and
    :func:`pointwise_conv2d_cost`.

    ``bias`` is the pointwise bias; ``depthwise_bias`` defaults to ``bias``
    (two layers, as in MobileNet). Keras's ``SeparableConv2D`` has no depthwise
    bias: pass ``depthwise_bias=False``.
    """
    if depthwise_bias is None:
        depthwise_bias = bias
    depthwise = depthwise_conv2d_cost(input_shape, kernel, stride, padding,
                                      depth_multiplier=depth_multiplier,
                                      bias=depthwise_bias, dilation=dilation)
    return depthwise + pointwise_conv2d_cost(depthwise.output_shape, filters, bias=bias)


def dense_cost(n_in: int, n_out: int, *, bias: bool = True, positions: int = 1) -> Cost:
    """A fully connected layer: ``n_in * n_out`` mult-adds (per position), ``n_in * n_out (+ n_out)``
    parameters. ``positions`` > 1 is a Dense applied at every position of a feature map."""
    n_in, n_out = _positive_int(n_in, "n_in"), _positive_int(n_out, "n_out")
    positions = _positive_int(positions, "positions")
    return Cost(mult_adds=n_in * n_out * positions,
                params=n_in * n_out + (n_out if bias else 0),
                output_shape=(n_out,))


def batchnorm_params(channels: int, *, center: bool = True, scale: bool = True) -> int:
    """BatchNorm stores per channel a moving mean and variance, plus beta (center) and gamma (scale)."""
    channels = _positive_int(channels, "channels")
    return channels * (2 + int(center) + int(scale))


# --------------------------------------------------------------------------
# 3. A Keras model, layer by layer
# --------------------------------------------------------------------------

KIND_LABELS = {
    "conv": "Conv", "dw": "Conv dw", "sep": "Conv sep", "pw": "Conv 1x1", "fc": "FC", "pool": "Avg Pool",
    "maxpool": "Max Pool", "softmax": "Softmax", "bn": "BatchNorm", "other": "other",
}


@dataclass(frozen=True)
class LayerCost:
    """One row of the per-layer table (paper Table 1 and more).

    ``kind``: ``conv`` (standard, kernel > 1), ``dw`` (depthwise), ``pw``
    (1x1 convolution), ``fc`` (Dense, or a 1x1 convolution on a 1x1 map as in
    Keras's MobileNet top), ``pool``/``maxpool``, ``softmax``, ``bn`` or
    ``other`` (padding, ReLU, reshape...: free). ``input_shape`` is the block's
    input before any ``ZeroPadding2D`` that feeds the layer (as the paper
    prints it). ``params`` is what the cost functions compute, ``keras_params``
    what ``layer.count_params()`` says; they must agree.
    """

    name: str
    layer_type: str
    kind: str
    stride: int
    filter_shape: str
    input_shape: tuple
    output_shape: tuple
    mult_adds: int
    params: int
    keras_params: int

    @property
    def type_stride(self) -> str:
        """The paper's first column, e.g. ``Conv dw / s2``."""
        label = "Conv" if self.kind == "pw" else KIND_LABELS[self.kind]
        return f"{label} / s{self.stride}"


def _shape(tensor_shape) -> tuple:
    return tuple(int(d) for d in tuple(tensor_shape)[1:])


def _inbound_layer(layer):
    """The layer whose output feeds ``layer`` (functional and Sequential models)."""
    history = getattr(layer.input, "_keras_history", None)
    return getattr(history, "operation", None)


def _fmt_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _layer_cost(layer, keras) -> LayerCost:
    L = keras.layers
    name, layer_type = layer.name, type(layer).__name__
    keras_params = int(layer.count_params())
    if isinstance(layer, L.InputLayer):
        shape = _shape(layer.output.shape)
        return LayerCost(name, layer_type, "other", 1, "", shape, shape, 0, 0, keras_params)
    in_shape, out_shape = _shape(layer.input.shape), _shape(layer.output.shape)
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise NotImplementedError(f"{name}: only channels_last layers are priced.")

    def conv_input():
        """The block input and padding: undo a ZeroPadding2D that feeds the layer."""
        source = _inbound_layer(layer)
        if isinstance(source, L.ZeroPadding2D) and layer.padding == "valid":
            return _shape(source.input.shape), tuple(tuple(p) for p in source.padding)
        return in_shape, layer.padding

    if isinstance(layer, L.SeparableConv2D):
        shape, padding = conv_input()
        cost = separable_conv2d_cost(shape, layer.filters, layer.kernel_size, layer.strides,
                                     padding, depth_multiplier=layer.depth_multiplier,
                                     bias=layer.use_bias, depthwise_bias=False,
                                     dilation=layer.dilation_rate)
        kh, kw = layer.kernel_size
        kind, filt = "sep", f"{kh}x{kw}x{shape[2]} dw + 1x1x{shape[2]}x{layer.filters}"
    elif isinstance(layer, L.DepthwiseConv2D):
        shape, padding = conv_input()
        cost = depthwise_conv2d_cost(shape, layer.kernel_size, layer.strides, padding,
                                     depth_multiplier=layer.depth_multiplier,
                                     bias=layer.use_bias, dilation=layer.dilation_rate)
        kh, kw = layer.kernel_size
        kind, filt = "dw", f"{kh}x{kw}x{shape[2]} dw"
    elif isinstance(layer, L.Conv2D):
        shape, padding = conv_input()
        cost = conv2d_cost(shape, layer.filters, layer.kernel_size, layer.strides, padding,
                           bias=layer.use_bias, groups=layer.groups,
                           dilation=layer.dilation_rate)
        kh, kw = layer.kernel_size
        if (kh, kw) == (1, 1) and shape[:2] == (1, 1):
            kind, filt = "fc", f"{shape[2]}x{layer.filters}"
        elif (kh, kw) == (1, 1):
            kind, filt = "pw", f"1x1x{shape[2] // layer.groups}x{layer.filters}"
        else:
            kind, filt = "conv", f"{kh}x{kw}x{shape[2] // layer.groups}x{layer.filters}"
    elif isinstance(layer, L.Dense):
        shape, n_in = in_shape, in_shape[-1]
        cost = dense_cost(n_in, layer.units, bias=layer.use_bias,
                          positions=math.prod(in_shape[:-1]))
        cost = Cost(cost.mult_adds, cost.params, in_shape[:-1] + (layer.units,))
        kind, filt = "fc", f"{n_in}x{layer.units}"
    elif isinstance(layer, L.BatchNormalization):
        shape = in_shape
        params = batchnorm_params(in_shape[layer.axis if layer.axis < 0 else layer.axis - 1],
                                  center=layer.center, scale=layer.scale)
        cost = Cost(0, params, in_shape)
        kind, filt = "bn", ""
    elif isinstance(layer, (L.GlobalAveragePooling2D, L.AveragePooling2D,
                            L.GlobalMaxPooling2D, L.MaxPooling2D)):
        shape = in_shape
        is_max = isinstance(layer, (L.GlobalMaxPooling2D, L.MaxPooling2D))
        if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
            window = in_shape[:2]
        else:
            window = tuple(layer.pool_size)
        cost = Cost(0, 0, out_shape)
        kind, filt = ("maxpool" if is_max else "pool"), f"Pool {window[0]}x{window[1]}"
    elif (isinstance(layer, L.Activation) and getattr(layer.activation, "__name__", "") == "softmax") \
            or isinstance(layer, L.Softmax):
        shape, cost = in_shape, Cost(0, 0, out_shape)
        kind, filt = "softmax", "Classifier"
    elif keras_params == 0:
        shape, cost = in_shape, Cost(0, 0, out_shape)
        kind, filt = "other", ""
    else:
        raise NotImplementedError(f"{name}: no cost function for a {layer_type} with "
                                  f"{keras_params} parameters.")
    if tuple(cost.output_shape) != out_shape:
        raise RuntimeError(f"{name}: computed output {cost.output_shape} but Keras says "
                           f"{out_shape}.")
    stride = getattr(layer, "strides", (1, 1))
    stride = stride[0] if isinstance(stride, (tuple, list)) else int(stride or 1)
    return LayerCost(name, layer_type, kind, int(stride), filt, tuple(shape), out_shape,
                     cost.mult_adds, cost.params, keras_params)


def model_costs(model) -> list[LayerCost]:
    """Price every layer of a built Keras model (MobileNet, VGG16, ...), in order.

    Used by notebook 06 for paper Tables 1, 2, 6, 7 and 8. Each row's
    ``params`` comes from the cost functions above and ``keras_params`` from
    ``layer.count_params()``: ``tests/test_costs.py`` checks they agree.
    """
    import keras

    return [_layer_cost(layer, keras) for layer in model.layers]


def cost_totals(rows: list[LayerCost]) -> dict:
    """Sums over a model's rows.

    ``mult_adds``; ``params`` (weights and biases, *without* BatchNorm, as the
    paper counts); ``bn_params`` (4 per channel: gamma, beta, moving mean and
    variance); ``bn_trainable`` (gamma and beta) and ``keras_params`` (what
    ``model.count_params()`` reports: ``params + bn_params``).
    """
    bn = sum(r.params for r in rows if r.kind == "bn")
    return {
        "mult_adds": sum(r.mult_adds for r in rows),
        "params": sum(r.params for r in rows if r.kind != "bn"),
        "bn_params": bn,
        "bn_trainable": bn // 2,
        "keras_params": sum(r.keras_params for r in rows),
    }


def share_by_kind(rows: list[LayerCost]) -> dict:
    """Paper Table 2: for each layer kind, its fraction of mult-adds and of parameters (no BN).

    Returns ``{kind: {"mult_adds": ..., "params": ..., "mult_adds_share": ...,
    "params_share": ...}}`` for the kinds that cost anything.
    """
    totals = cost_totals(rows)
    out = {}
    for r in rows:
        if r.kind == "bn" or (r.mult_adds == 0 and r.params == 0):
            continue
        entry = out.setdefault(r.kind, {"mult_adds": 0, "params": 0})
        entry["mult_adds"] += r.mult_adds
        entry["params"] += r.params
    for entry in out.values():
        entry["mult_adds_share"] = entry["mult_adds"] / totals["mult_adds"]
        entry["params_share"] = entry["params"] / totals["params"]
    return out


def paper_table1(rows: list[LayerCost]) -> list[LayerCost]:
    """The rows the MobileNet paper's Table 1 prints: convolutions, pooling, FC and softmax."""
    return [r for r in rows if r.kind in ("conv", "dw", "pw", "sep", "fc", "pool", "maxpool",
                                          "softmax")]


def format_table(rows: list[LayerCost], *, keras_column: bool = False) -> str:
    """A fixed-width text table of rows (type/stride, filter shape, input size, mult-adds, params)."""
    header = ["Type / stride", "Filter shape", "Input size", "Mult-adds", "Params"]
    if keras_column:
        header.append("Keras")
    lines = []
    for r in rows:
        line = [r.type_stride, r.filter_shape, _fmt_shape(r.input_shape),
                f"{r.mult_adds:,}", f"{r.params:,}"]
        if keras_column:
            line.append(f"{r.keras_params:,}")
        lines.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    right = {3, 4, 5}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(x) for x in lines])


# --------------------------------------------------------------------------
# 4. Measured time on this machine
# --------------------------------------------------------------------------

#: The stride-1 depthwise-separable layers of MobileNet-224 as (D_F, M, N).
MOBILENET_LAYER_SHAPES = [(112, 32, 64), (56, 128, 128), (28, 256, 256),
                          (14, 512, 512), (7, 1024, 1024)]


def arithmetic_intensity(d_k: int, m: int, n: int, d_f: int, *, bytes_per_value: int = 4) -> dict:
    """Mult-adds per byte a layer must at least move (input + weights + output, read or written once).

    For a stride-1 'same' layer of each kind: ``standard``, ``depthwise`` and
    ``pointwise``. A processor that does tens of mult-adds in the time it moves
    one byte is starved by a layer that offers about one: the depthwise step.
    """
    d_k, m = _positive_int(d_k, "D_K"), _positive_int(m, "M")
    n, d_f = _positive_int(n, "N"), _positive_int(d_f, "D_F")
    bytes_per_value = _positive_int(bytes_per_value, "bytes_per_value")
    x, y_m, y_n = d_f * d_f * m, d_f * d_f * m, d_f * d_f * n
    layers = {
        "standard": (standard_mult_adds(d_k, m, n, d_f), x + d_k * d_k * m * n + y_n),
        "depthwise": (depthwise_mult_adds(d_k, m, d_f), x + d_k * d_k * m + y_m),
        "pointwise": (pointwise_mult_adds(m, n, d_f), y_m + m * n + y_n),
    }
    return {kind: macs / (values * bytes_per_value) for kind, (macs, values) in layers.items()}


def time_conv_layers(shapes=MOBILENET_LAYER_SHAPES, *, d_k: int = 3, batch: int = 1,
                     warmup: int = 3, repeats: int = 10, seed: int = 0) -> list[dict]:
    """Time a standard ``d_k x d_k`` convolution against a depthwise-separable one.

    For each ``(D_F, M, N)`` in ``shapes`` (stride 1, 'same' padding, float32,
    a batch of ``batch`` images) four compiled TensorFlow functions run:
    ``tf.nn.conv2d`` (standard), ``tf.nn.separable_conv2d`` (separable), and its
    two halves alone (``tf.nn.depthwise_conv2d``, a 1x1 ``tf.nn.conv2d``). Each
    runs ``warmup`` times, then ``repeats`` times in turn (so background load
    hits all alike); the median time of each is kept. Returns one dict per
    shape: milliseconds, ``measured_speedup`` (standard / separable time),
    ``theoretical_ratio`` (standard / separable mult-adds, ``1 / (1/N + 1/D_K**2)``),
    ``depthwise_time_share`` / ``depthwise_madds_share`` (the depthwise half's
    share of the separable time / mult-adds) and GMAC/s achieved.
    """
    import tensorflow as tf

    d_k = _positive_int(d_k, "d_k")
    batch = _positive_int(batch, "batch")
    warmup = _positive_int(warmup, "warmup")
    repeats = _positive_int(repeats, "repeats")
    rng = tf.random.Generator.from_seed(seed)
    results = []
    for d_f, m, n in shapes:
        d_f, m, n = _positive_int(d_f, "D_F"), _positive_int(m, "M"), _positive_int(n, "N")
        x = rng.normal((batch, d_f, d_f, m))
        w_std = rng.normal((d_k, d_k, m, n))
        w_dw = rng.normal((d_k, d_k, m, 1))
        w_pw = rng.normal((1, 1, m, n))
        functions = {
            "standard": tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, w_std, 1, "SAME"))),
            "separable": tf.function(lambda: tf.reduce_sum(
                tf.nn.separable_conv2d(x, w_dw, w_pw, [1, 1, 1, 1], "SAME"))),
            "depthwise": tf.function(lambda: tf.reduce_sum(
                tf.nn.depthwise_conv2d(x, w_dw, [1, 1, 1, 1], "SAME"))),
            "pointwise": tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, w_pw, 1, "SAME"))),
        }
        for _ in range(warmup):
            for fn in functions.values():
                fn().numpy()
        seconds = {name: [] for name in functions}
        for _ in range(repeats):
            for name, fn in functions.items():
                start = time.perf_counter()
                fn().numpy()
                seconds[name].append(time.perf_counter() - start)
        ms = {name: 1e3 * statistics.median(t) for name, t in seconds.items()}
        std_ma = standard_mult_adds(d_k, m, n, d_f) * batch
        dw_ma = depthwise_mult_adds(d_k, m, d_f) * batch
        sep_ma = separable_mult_adds(d_k, m, n, d_f) * batch
        results.append({
            "d_f": d_f, "m": m, "n": n,
            "standard_ms": ms["standard"], "separable_ms": ms["separable"],
            "depthwise_ms": ms["depthwise"], "pointwise_ms": ms["pointwise"],
            "measured_speedup": ms["standard"] / ms["separable"],
            "theoretical_ratio": std_ma / sep_ma,
            "depthwise_time_share": ms["depthwise"] / (ms["depthwise"] + ms["pointwise"]),
            "depthwise_madds_share": dw_ma / sep_ma,
            "standard_gmacs_per_s": std_ma / ms["standard"] / 1e6,
            "separable_gmacs_per_s": sep_ma / ms["separable"] / 1e6,
            "depthwise_gmacs_per_s": dw_ma / ms["depthwise"] / 1e6,
        })
    return results


def format_timings(results: list[dict]) -> str:
    """The timing table the notebook prints (times vary run to run: never checked)."""
    header = ["D_F x D_F x M -> N", "standard ms", "separable ms", "measured x", "theory x",
              "dw % time", "dw % madds", "GMAC/s std", "GMAC/s sep", "GMAC/s dw"]
    lines = [[f"{r['d_f']}x{r['d_f']}x{r['m']} -> {r['n']}", f"{r['standard_ms']:.2f}",
              f"{r['separable_ms']:.2f}", f"{r['measured_speedup']:.2f}",
              f"{r['theoretical_ratio']:.2f}", f"{100 * r['depthwise_time_share']:.0f}",
              f"{100 * r['depthwise_madds_share']:.1f}", f"{r['standard_gmacs_per_s']:.1f}",
              f"{r['separable_gmacs_per_s']:.1f}", f"{r['depthwise_gmacs_per_s']:.1f}"]
             for r in results]
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths))
                     for row in [header] + lines)


# --------------------------------------------------------------------------
# Figures and the explorer's text (notebook 06)
# --------------------------------------------------------------------------


def plot_separable_ratio(ns=None, kernel_sizes=(3, 5, 7), mark=None, ax=None):
    """Notebook 06: standard / depthwise-separable mult-adds, ``1 / (1/N + 1/D_K**2)``, against N.

    One line per kernel size D_K, its ceiling D_K**2 dashed; ``mark=(n, d_k)``
    adds a dot (the widget's current layer). Returns the Figure.
    """
    ns = np.unique(np.geomspace(1, 2048, 200).astype(int)) if ns is None else np.asarray(ns)
    if ax is None:
        fig, ax = plt.subplots()
    else:
        fig = ax.figure
    for i, d_k in enumerate(kernel_sizes):
        color = f"C{i}"
        ax.plot(ns, 1.0 / (1.0 / ns + 1.0 / d_k**2), color=color, label=f"$D_K$ = {d_k}")
        ax.axhline(d_k**2, color=color, linestyle="--", linewidth=0.8)
    if mark is not None:
        n, d_k = mark
        ax.plot([n], [1.0 / (1.0 / n + 1.0 / d_k**2)], "o", color="black",
                label=f"N = {n}, $D_K$ = {d_k}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("output channels N")
    ax.set_ylabel("standard / separable mult-adds")
    ax.set_title(r"Saving of a depthwise-separable convolution ($D_K^2$ dashed)")
    ax.legend()
    return fig


def plot_conv_speedups(results, ax=None):
    """Notebook 06: measured speed-up of separable over standard convolution beside the theory.

    ``results`` are :func:`tlcourse.costs.time_conv_layers` rows. Returns the Figure.
    """
    if ax is None:
        fig, ax = plt.subplots()
    else:
        fig = ax.figure
    labels = [f"{r['d_f']}x{r['d_f']}x{r['m']}\n-> {r['n']}" for r in results]
    x = np.arange(len(results))
    width = 0.38
    ax.bar(x - width / 2, [r["theoretical_ratio"] for r in results], width,
           label="theory (mult-adds)", color="C0")
    ax.bar(x + width / 2, [r["measured_speedup"] for r in results], width,
           label="measured (time)", color="C1")
    ax.axhline(1.0, color="black", linewidth=0.8)
    top = max(max(r["theoretical_ratio"], r["measured_speedup"]) for r in results)
    ax.set_ylim(0, 1.3 * top)  # room for the legend above the bars
    ax.set_xticks(x, labels)
    ax.set_ylabel("standard / separable")
    ax.set_title("3x3 convolution: how much faster separable is, on paper and measured")
    ax.legend(loc="upper left", ncols=2)
    return fig


def cost_summary(d_k: int, m: int, n: int, d_f: int) -> str:
    """The explorer's text: both costs (mult-adds, parameters without biases) and their ratio."""
    std = standard_mult_adds(d_k, m, n, d_f)
    dw = depthwise_mult_adds(d_k, m, d_f)
    pw = pointwise_mult_adds(m, n, d_f)
    ratio = separable_ratio(d_k, n)
    p_std = standard_params(d_k, m, n, bias=False)
    p_sep = separable_params(d_k, m, n, bias=False)
    return "\n".join([
        f"D_K={d_k}  M={m}  N={n}  D_F={d_f}",
        f"standard   : {std:>16,} mult-adds  {p_std:>12,} weights",
        f"depthwise  : {dw:>16,} mult-adds  {depthwise_params(d_k, m, bias=False):>12,} weights",
        f"pointwise  : {pw:>16,} mult-adds  {pointwise_params(m, n, bias=False):>12,} weights",
        f"separable  : {dw + pw:>16,} mult-adds  {p_sep:>12,} weights",
        f"separable / standard = 1/N + 1/D_K^2 = {float(ratio):.4f}"
        f"  ->  {float(1 / ratio):.2f}x fewer mult-adds",
    ])
