"""physai-data-management imports on its own (its CLI group is tested in core)."""

import physai.data_management


def test_package_has_a_version() -> None:
    assert physai.data_management.__version__.count(".") >= 2
