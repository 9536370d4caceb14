"""Photos unlike the training photos, and a fine-tuned model that stays robust (notebook 05).

Fine-tuning can distort pretrained features and lose accuracy on photos unlike the training set
(Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution"). :func:`corrupt` makes such photos from test photos: four corruptions of
the kinds a phone camera produces. :func:`interpolate` is WiSE-FT (Wortsman et al. 2022, "Robust
fine-tuning of zero-shot models"): the weights of the frozen-base model and of the fine-tuned one,
mixed in proportion ``alpha``.
"""

from __future__ import annotations

import io

import numpy as np

#: The corruptions and what each does, at the one severity the course uses.
CORRUPTIONS = {
    "downscaled": "shrunk to a quarter of its side, then enlarged back (a distant, small shot)",
    "blurred": "Gaussian blur, sigma 3 pixels (out of focus, or camera shake)",
    "jpeg": "saved as a JPEG at quality 8 (heavy compression)",
    "bright": "every pixel times 1.7, clipped at 255 (overexposed)",
}


def corrupt(images, kind: str) -> np.ndarray:
    """``images`` (n, h, w, 3), pixels 0-255, with the corruption ``kind`` (:data:`CORRUPTIONS`).

    Returns float32 pixels 0-255, the shape of ``images``; the input is not changed.
    """
    from PIL import Image, ImageFilter

    images = np.asarray(images, dtype=np.float32)
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {sorted(CORRUPTIONS)}, got {kind!r}")
    if kind == "bright":
        return np.clip(images * 1.7, 0, 255)
    out = []
    for image in np.clip(images, 0, 255).round().astype(np.uint8):
        photo = Image.fromarray(image)
        if kind == "downscaled":
            small = photo.resize((photo.width // 4, photo.height // 4), Image.BILINEAR)
            photo = small.resize(photo.size, Image.BILINEAR)
        elif kind == "blurred":
            photo = photo.filter(ImageFilter.GaussianBlur(radius=3))
        else:  # jpeg
            buffer = io.BytesIO()
            photo.save(buffer, format="JPEG", quality=8)
            buffer.seek(0)
            photo = Image.open(buffer).convert("RGB")
        out.append(np.asarray(photo, dtype=np.float32))
    return np.stack(out)


def interpolate(model, frozen_weights, tuned_weights, alpha: float):
    """Set ``model``'s weights to ``(1 - alpha) * frozen + alpha * tuned`` (WiSE-FT); returns it.

    ``frozen_weights``, ``tuned_weights``: ``get_weights()`` of two models of the same architecture
    (the head on the frozen base, and the same model fine-tuned). ``alpha`` 0 is the first, 1 the
    second; in between, every weight on the straight line between them.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    model.set_weights(
        [(1 - alpha) * a + alpha * b for a, b in zip(frozen_weights, tuned_weights, strict=True)]
    )
    return model
