"""physai-synthetic-data imports on its own (its CLI group is tested in core)."""

import physai.synthetic_data


def test_package_has_a_version() -> None:
    assert physai.synthetic_data.__version__.count(".") >= 2
