"""Notebook 06's explorer: sliders for D_K, M, N and D_F, costs and ratio updated live.

The notebook calls :func:`separable_cost_explorer`; every number it shows comes
from :mod:`tlcourse.costs`, the chart from :func:`tlcourse.plots.plot_separable_ratio`.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

from . import costs, plots


def cost_summary(d_k: int, m: int, n: int, d_f: int) -> str:
    """The explorer's text: both costs (mult-adds, parameters without biases) and their ratio."""
    std = costs.standard_mult_adds(d_k, m, n, d_f)
    dw = costs.depthwise_mult_adds(d_k, m, d_f)
    pw = costs.pointwise_mult_adds(m, n, d_f)
    ratio = costs.separable_ratio(d_k, n)
    p_std = costs.standard_params(d_k, m, n, bias=False)
    p_sep = costs.separable_params(d_k, m, n, bias=False)
    return "\n".join([
        f"D_K={d_k}  M={m}  N={n}  D_F={d_f}",
        f"standard   : {std:>16,} mult-adds  {p_std:>12,} weights",
        f"depthwise  : {dw:>16,} mult-adds  {costs.depthwise_params(d_k, m, bias=False):>12,} weights",
        f"pointwise  : {pw:>16,} mult-adds  {costs.pointwise_params(m, n, bias=False):>12,} weights",
        f"separable  : {dw + pw:>16,} mult-adds  {p_sep:>12,} weights",
        f"separable / standard = 1/N + 1/D_K^2 = {float(ratio):.4f}"
        f"  ->  {float(1 / ratio):.2f}x fewer mult-adds",
    ])


def separable_cost_explorer(d_k: int = 3, m: int = 32, n: int = 64, d_f: int = 112,
                            kernel_sizes=(3, 5, 7)) -> widgets.interactive:
    """Sliders for D_K, M, N and D_F; shows :func:`cost_summary` and the ratio chart.

    The chart plots standard / separable mult-adds against N for ``kernel_sizes``
    (and the slider's D_K) with the current (N, D_K) marked. Returns the
    ``ipywidgets.interactive`` (display it, or leave it last in a cell).
    """
    style = {"description_width": "40px"}
    layout = widgets.Layout(width="420px")
    sliders = {
        "d_k": widgets.IntSlider(d_k, min=1, max=11, description="D_K", style=style, layout=layout),
        "m": widgets.IntSlider(m, min=1, max=1024, description="M", style=style, layout=layout),
        "n": widgets.IntSlider(n, min=1, max=1024, description="N", style=style, layout=layout),
        "d_f": widgets.IntSlider(d_f, min=1, max=224, description="D_F", style=style,
                                 layout=layout),
    }

    def show(d_k, m, n, d_f):
        print(cost_summary(d_k, m, n, d_f))
        sizes = tuple(sorted(set(kernel_sizes) | {d_k}))
        fig = plots.plot_separable_ratio(kernel_sizes=sizes, mark=(n, d_k))
        fig.set_size_inches(6.5, 3.4)
        plt.show()
        plt.close(fig)  # shown already; do not pile up figures as the sliders move

    return widgets.interactive(show, **sliders)
