"""Feature declarations (info.json `features`): parsing, arrow column types, numpy conversion.

A feature is `{"dtype": ..., "shape": [...], "names": ...}` like LeRobot's. Numeric dtypes are
numpy's names; `video` is a camera stored as MP4 (shape `[H, W, 3]`), `image` a camera stored
as PNG/JPEG bytes in the parquet file (read only), `string` a text column. Shape `[1]` is a
scalar column; `[n]` a fixed-size list; more dimensions nested fixed-size lists (HF `ArrayND`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.data_management.lerobot.format import DEFAULT_FEATURES

NUMERIC_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)
VISUAL_DTYPES = frozenset({"video", "image"})
KNOWN_DTYPES = NUMERIC_DTYPES | VISUAL_DTYPES | {"string"}


@dataclass(frozen=True)
class Feature:
    """One declared feature: name, dtype, shape, dimension names and (for videos) codec info."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    names: Any = None
    info: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def is_video(self) -> bool:
        """Stored as MP4 frames under `videos/`."""
        return self.dtype == "video"

    @property
    def is_image(self) -> bool:
        """Stored as encoded image bytes inside the parquet data."""
        return self.dtype == "image"

    @property
    def is_visual(self) -> bool:
        """A camera (video or image)."""
        return self.dtype in VISUAL_DTYPES

    @property
    def is_numeric(self) -> bool:
        """A numeric (or bool) array column."""
        return self.dtype in NUMERIC_DTYPES

    @property
    def is_opaque(self) -> bool:
        """A dtype this library does not interpret (e.g. LeRobot's `language`): read as objects."""
        return self.dtype not in KNOWN_DTYPES

    @property
    def is_scalar(self) -> bool:
        """Shape `[1]`: one value per frame, stored as a plain column."""
        return self.shape == (1,)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of a camera, whichever order the shape was declared in."""
        if len(self.shape) != 3:
            raise UserError(f"feature {self.name!r}: a camera needs a 3-D shape, got {self.shape}")
        names = list(self.names) if isinstance(self.names, list | tuple) else []
        channels_first = names[:1] == ["channels"] or (
            not names and self.shape[2] not in (1, 3, 4) and self.shape[0] in (1, 3, 4)
        )
        if channels_first:
            c, h, w = self.shape
        else:
            h, w, c = self.shape
        return h, w, c

    def to_json(self) -> dict[str, Any]:
        """The info.json form."""
        spec: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape), "names": self.names}
        if self.info is not None:
            spec["info"] = self.info
        return spec

    def arrow_type(self) -> pa.DataType:
        """The parquet column type LeRobot (HF datasets) uses for this feature."""
        if self.dtype == "string":
            return pa.string()
        if self.is_image:
            return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        if self.is_video:
            raise ValueError("video features have no parquet column")
        value: pa.DataType = pa.from_numpy_dtype(np.dtype(self.dtype))
        if self.is_scalar:
            return value
        for size in reversed(self.shape):
            value = pa.list_(value, size)
        return value

    def hf_feature(self) -> dict[str, Any]:
        """The HF `datasets` feature description stored in the parquet schema metadata."""
        if self.is_image:
            return {"_type": "Image"}
        value = {"dtype": self.dtype, "_type": "Value"}
        if self.is_scalar or self.dtype == "string":
            return value
        if len(self.shape) == 1:
            return {"feature": value, "length": self.shape[0], "_type": "List"}
        return {"shape": list(self.shape), "dtype": self.dtype, "_type": f"Array{len(self.shape)}D"}


def parse_feature(name: str, spec: Any, where: str, *, strict: bool = True) -> Feature:
    """One `features` entry → Feature, or UserError naming `where` and the problem.

    Not `strict` (reading), a dtype this library does not know is kept as an opaque feature.
    """
    if not isinstance(spec, Mapping):
        raise UserError(f"{where}: feature {name!r} must be an object with dtype and shape")
    dtype = spec.get("dtype")
    if not strict and isinstance(dtype, str) and dtype and dtype not in KNOWN_DTYPES:
        shape = spec.get("shape")
        return Feature(
            name, dtype, tuple(shape) if isinstance(shape, list) else (1,), spec.get("names"), None
        )
    if dtype not in KNOWN_DTYPES:
        raise UserError(
            f"{where}: feature {name!r} has dtype {dtype!r}; use one of "
            f"{', '.join(sorted(KNOWN_DTYPES))}"
        )
    raw_shape = spec.get("shape")
    if raw_shape is None and dtype == "string":
        raw_shape = [1]
    if (
        not isinstance(raw_shape, list | tuple)
        or not raw_shape
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in raw_shape)
    ):
        raise UserError(
            f"{where}: feature {name!r} has shape {raw_shape!r}; use a list of positive ints"
        )
    info = spec.get("info") or spec.get("video_info")
    feature = Feature(
        name=name,
        dtype=str(dtype),
        shape=tuple(int(s) for s in raw_shape),
        names=spec.get("names"),
        info=dict(info) if isinstance(info, Mapping) else None,
    )
    if feature.is_visual and feature.frame_shape[2] not in (1, 3):
        raise UserError(f"{where}: camera {name!r} must have 1 or 3 channels")
    return feature


def parse_features(specs: Any, where: str, *, strict: bool = True) -> dict[str, Feature]:
    """A whole `features` object (as in info.json) → {name: Feature}."""
    if not isinstance(specs, Mapping) or not specs:
        raise UserError(f"{where}: 'features' must be a non-empty object")
    return {
        str(name): parse_feature(str(name), spec, where, strict=strict)
        for name, spec in specs.items()
    }


def declare_features(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Feature]:
    """User feature declarations for a new dataset, with LeRobot's default columns appended."""
    where = "features"
    for name in specs:
        if name in DEFAULT_FEATURES:
            raise UserError(f"feature {name!r} is written by the writer itself: do not declare it")
        if "/" in name or not name:
            raise UserError(f"feature name {name!r} is not allowed (empty, or contains '/')")
    features = parse_features(dict(specs), where) if specs else {}
    for feature in features.values():
        if feature.is_image:
            raise UserError(
                f"feature {feature.name!r}: dtype 'image' is read-only here; "
                "declare cameras as dtype 'video'"
            )
        if feature.is_video and feature.frame_shape[2] != 3:
            raise UserError(f"camera {feature.name!r} must have 3 channels (RGB)")
    for name, spec in DEFAULT_FEATURES.items():
        features[name] = parse_feature(name, spec, where)
    return features


def column_to_numpy(
    column: pa.ChunkedArray | pa.Array, feature: Feature, where: str
) -> NDArray[Any]:
    """A parquet column → numpy array of shape (rows, *shape), or (rows,) for scalars."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    if feature.dtype == "string" or feature.is_opaque:
        cells = np.empty(len(array), dtype=object)
        cells[:] = array.to_pylist()
        return cells
    rows = len(array)
    values = array
    while (
        pa.types.is_list(values.type)
        or pa.types.is_fixed_size_list(values.type)
        or (pa.types.is_large_list(values.type))
    ):
        if values.null_count:
            raise UserError(f"{where}: column {feature.name!r} has missing (null) values")
        values = values.flatten()
    if values.null_count:
        if not pa.types.is_floating(values.type):
            raise UserError(f"{where}: column {feature.name!r} has missing (null) values")
        values = values.fill_null(float("nan"))
    flat: NDArray[Any] = np.asarray(values.to_numpy(zero_copy_only=False))
    dtype = np.dtype(feature.dtype)
    if flat.dtype != dtype:
        flat = flat.astype(dtype)
    if feature.is_scalar:
        if flat.size != rows:
            raise UserError(f"{where}: column {feature.name!r} does not hold one value per row")
        return flat
    expected = rows * int(np.prod(feature.shape))
    if flat.size != expected:
        raise UserError(
            f"{where}: column {feature.name!r} holds {flat.size} values for {rows} rows of "
            f"shape {list(feature.shape)}"
        )
    return flat.reshape(rows, *feature.shape)


def numpy_to_arrow(values: NDArray[Any], feature: Feature) -> pa.Array:
    """(rows, *shape) numpy values → the parquet column of `feature`."""
    if feature.dtype == "string":
        return pa.array([str(v) for v in values], type=pa.string())
    rows = values.shape[0]
    flat = np.ascontiguousarray(values).reshape(-1)
    array: pa.Array = pa.array(flat, type=pa.from_numpy_dtype(flat.dtype))
    if feature.is_scalar:
        return array
    for size in reversed(feature.shape):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    assert len(array) == rows
    return array
