"""physai-training imports on its own (its command group is tested with the CLI in core)."""

import physai.training


def test_package_has_a_version() -> None:
    assert physai.training.__version__.count(".") >= 2
