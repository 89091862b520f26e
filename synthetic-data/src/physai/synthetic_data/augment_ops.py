"""Image augmentation of one camera with fixed parameters, applied per frame (numpy only).

    augment = FrameAugmenter(params, height=48, width=64, noise_rng=np.random.default_rng(0))
    out = augment(frame)                                      # HxWx3 uint8 → HxWx3 uint8

Per frame, in this order: crop-and-resize and shift (one separable bilinear resampling, edges
replicated), colour jitter (brightness, contrast, saturation, hue as one affine colour
transform), gaussian blur (separable, edges replicated), gaussian noise, then rounding to uint8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# ITU-R BT.601 luma and the YIQ transform used for saturation and the hue rotation.
_LUMA = np.array([0.299, 0.587, 0.114])
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class CameraParams:
    """One camera's augmentation for a whole episode (recorded as the episode's label)."""

    brightness: float
    contrast: float
    saturation: float
    hue: float
    blur_sigma: float
    noise_std: float
    crop_scale: float
    crop_top: float
    crop_left: float
    shift_y: int
    shift_x: int

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (floats rounded to 6 decimals)."""
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


_Axis = tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32] | None]


def _resample_axis(size: int, scale: float, offset: float, shift: int) -> _Axis | None:
    """One axis of the crop-and-resize and shift: bilinear source indices (low, high) and the
    weights of `high` (None: whole pixels, a plain gather); None for the identity."""
    if scale >= 1 and shift == 0:
        return None
    start = offset * size * (1 - scale)
    source = np.clip(start + (np.arange(size) + 0.5) * scale - 0.5 - shift, 0, size - 1)
    low = np.floor(source).astype(np.intp)
    weight = (source - low).astype(np.float32)
    if not weight.any():
        return low, low, None
    return low, np.minimum(low + 1, size - 1), weight


def _resample(
    planes: NDArray[np.float32],
    axis: int,
    plan: _Axis,
    out: NDArray[np.float32],
    spare: NDArray[np.float32],
) -> None:
    """Bilinear resampling of (3, H, W) `planes` along `axis` into `out` (`spare` is scratch)."""
    low, high, weight = plan
    np.take(planes, low, axis=axis, out=out)
    if weight is None:
        return
    np.take(planes, high, axis=axis, out=spare)
    spare -= out
    shape = [1, 1, 1]
    shape[axis] = len(weight)
    spare *= weight.reshape(shape)
    out += spare


def _color_matrix(p: CameraParams) -> NDArray[np.float32] | None:
    """Brightness, contrast's scale, saturation and hue rotation as one 3x3 matrix acting on
    pixel rows (`pixels @ matrix`); None when it is the identity."""
    if p.saturation == 1 and p.hue == 0 and p.brightness == 1 and p.contrast == 1:
        return None
    saturate = p.saturation * np.eye(3) + (1 - p.saturation) * np.tile(_LUMA, (3, 1))
    angle = 2 * math.pi * p.hue
    cos, sin = math.cos(angle), math.sin(angle)
    rotate = np.array([[1, 0, 0], [0, cos, -sin], [0, sin, cos]])
    hue = np.linalg.inv(_YIQ) @ rotate @ _YIQ
    return np.asarray((p.brightness * p.contrast * hue @ saturate).T, dtype=np.float32)


def _gaussian_taps(sigma: float) -> NDArray[np.float32] | None:
    if sigma <= 0:
        return None
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1)
    taps = np.exp(-(x**2) / (2 * sigma**2))
    return np.asarray(taps / taps.sum(), dtype=np.float32)


class _Blur:
    """Separable gaussian blur of (3, H, W) planes, edges replicated, in reused buffers."""

    def __init__(self, taps: NDArray[np.float32], height: int, width: int) -> None:
        self.taps = taps
        self.radius = r = len(taps) // 2
        self._rows = np.empty((3, height + 2 * r, width), dtype=np.float32)
        self._cols = np.empty((3, height, width + 2 * r), dtype=np.float32)
        self._scratch = np.empty((3, height, width), dtype=np.float32)

    def __call__(self, planes: NDArray[np.float32], out: NDArray[np.float32]) -> None:
        """Blur `planes` into `out` (`planes` is overwritten on the way)."""
        r, (_, h, w) = self.radius, planes.shape
        rows = self._rows
        rows[:, r : r + h] = planes
        rows[:, :r] = planes[:, :1]
        rows[:, r + h :] = planes[:, -1:]
        self._convolve(lambda k: rows[:, k : k + h], planes)
        cols = self._cols
        cols[:, :, r : r + w] = planes
        cols[:, :, :r] = planes[:, :, :1]
        cols[:, :, r + w :] = planes[:, :, -1:]
        self._convolve(lambda k: cols[:, :, k : k + w], out)

    def _convolve(self, window: Callable[[int], NDArray[np.float32]], out: NDArray[Any]) -> None:
        scratch = self._scratch
        np.multiply(window(0), self.taps[0], out=out)
        for k in range(1, len(self.taps)):
            np.multiply(window(k), self.taps[k], out=scratch)
            out += scratch


class FrameAugmenter:
    """Applies one camera's episode parameters to each frame (HxWx3 uint8 → HxWx3 uint8).

    Works on planar float32 copies (one contiguous plane per channel) in buffers reused from
    frame to frame: no BLAS, no per-frame allocations beyond the output.
    """

    def __init__(
        self, params: CameraParams, *, height: int, width: int, noise_rng: np.random.Generator
    ) -> None:
        self.params = params
        self._rows = _resample_axis(height, params.crop_scale, params.crop_top, params.shift_y)
        self._cols = _resample_axis(width, params.crop_scale, params.crop_left, params.shift_x)
        matrix = _color_matrix(params)
        self._matrix = None if matrix is None else matrix.astype(np.float64)
        # contrast pulls towards the brightened mean grey m: + (1 - c) * b * m on every channel
        self._offset = (1 - params.contrast) * params.brightness
        taps = _gaussian_taps(params.blur_sigma)
        self._blur = None if taps is None else _Blur(taps, height, width)
        self._noise_rng = noise_rng
        self._planes = np.empty((3, height, width), dtype=np.float32)
        self._mixed = np.empty((3, height, width), dtype=np.float32)
        self._spare = np.empty((3, height, width), dtype=np.float32)
        self._scratch = np.empty((height, width), dtype=np.float32)
        self._identity = (
            self._rows is None
            and self._cols is None
            and self._matrix is None
            and self._blur is None
            and params.noise_std == 0
        )

    def __call__(self, frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The augmented copy of one frame (the next noise draws are used)."""
        if self._identity:
            return frame
        planes, other = self._planes, self._mixed
        planes[...] = frame.transpose(2, 0, 1)
        for axis, plan in ((1, self._rows), (2, self._cols)):
            if plan is not None:
                _resample(planes, axis, plan, other, self._spare)
                planes, other = other, planes
        if self._matrix is not None:
            self._mix(planes, other)
            planes, other = other, planes
        if self._blur is not None:
            self._blur(planes, other)
            planes, other = other, planes
        if self.params.noise_std > 0:
            noise = other
            self._noise_rng.standard_normal(dtype=np.float32, out=noise)
            noise *= np.float32(self.params.noise_std)
            planes += noise
        np.rint(planes, out=planes)
        np.clip(planes, 0, 255, out=planes)
        return np.ascontiguousarray(planes.astype(np.uint8).transpose(1, 2, 0))

    def _mix(self, planes: NDArray[np.float32], out: NDArray[np.float32]) -> None:
        """`self._matrix` applied per pixel, plus contrast's offset, into `out`."""
        matrix, scratch = self._matrix, self._scratch
        assert matrix is not None
        offset = 0.0
        if self._offset:
            means = [float(plane.mean(dtype=np.float64)) for plane in planes]
            offset = self._offset * float(np.dot(means, _LUMA))
        for c in range(3):
            np.multiply(planes[0], np.float32(matrix[0, c]), out=out[c])
            for k in (1, 2):
                np.multiply(planes[k], np.float32(matrix[k, c]), out=scratch)
                out[c] += scratch
            if offset:
                out[c] += np.float32(offset)
