"""physai-training imports on its own (its CLI group is tested in core)."""

import physai.training


def test_package_has_a_version() -> None:
    assert physai.training.__version__.count(".") >= 2
