"""Per-sample data augmentation, the work input pipelines run in worker processes."""

from __future__ import annotations

import math

import numpy as np

from .. import random as engine_random


class RandomAffine:
    """Rotate an image by a random angle in ``[-degrees, degrees]`` and shift it by up to
    ``translate`` pixels each way (torchvision's ``RandomAffine``), on arrays shaped ``(..., H, W)``.

    The image is resampled at ``upsample`` times its resolution (bilinear) and averaged back
    down, which smooths the result; the cost grows with ``upsample ** 2``, which makes it a
    tunable stand-in for the decoding and augmentation of real pipelines. Draws come from the
    engine's generator (``mlsys.manual_seed``), which each loader worker seeds differently.
    """

    def __init__(self, degrees: float = 15.0, translate: float = 1.0, upsample: int = 2) -> None:
        for name, value in (("degrees", degrees), ("translate", translate)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RandomAffine: {name} must be a finite number >= 0, got {value!r}")
        if not isinstance(upsample, int) or isinstance(upsample, bool) or upsample < 1:
            raise ValueError(f"RandomAffine: upsample must be a positive integer, got {upsample!r}")
        self.degrees, self.translate, self.upsample = float(degrees), float(translate), upsample

    def __call__(self, image: np.ndarray) -> np.ndarray:
        rng = engine_random.generator()
        angle = rng.uniform(-self.degrees, self.degrees)
        return self.apply(image, angle, tuple(rng.uniform(-self.translate, self.translate, size=2)))

    def apply(self, image: np.ndarray, degrees: float, shift: tuple[float, float]) -> np.ndarray:
        """``image`` rotated counter-clockwise by ``degrees`` about its centre, then moved by
        ``shift`` (rows, columns) pixels."""
        from scipy import ndimage

        image = np.asarray(image)
        if image.ndim < 2:
            raise ValueError(f"RandomAffine: expected an image shaped (..., H, W), got shape {image.shape}")
        k = self.upsample
        h, w = image.shape[-2:]
        angle = math.radians(degrees)
        # output pixel p reads input pixel rotation @ (p - centre - shift) + centre
        rotation = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
        centre = (np.array([h, w]) * k - 1) / 2
        offset = centre - rotation @ (centre + np.asarray(shift, dtype=float) * k)
        out = np.empty_like(image)
        for index in np.ndindex(image.shape[:-2]):
            fine = image[index].astype(np.float64)
            if k > 1:
                fine = ndimage.zoom(fine, k, order=1, grid_mode=True, mode="nearest")
            moved = ndimage.affine_transform(fine, rotation, offset, order=1, mode="constant")
            out[index] = moved.reshape(h, k, w, k).mean(axis=(1, 3))
        return out
