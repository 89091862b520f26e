"""physai-data-management imports on its own (its command group is tested with the CLI in core)."""

import physai.data_management


def test_package_has_a_version() -> None:
    assert physai.data_management.__version__.count(".") >= 2
