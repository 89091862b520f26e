"""physai-data-pipeline imports on its own (its CLI group is tested in core)."""

import physai.data_pipeline


def test_package_has_a_version() -> None:
    assert physai.data_pipeline.__version__.count(".") >= 2
