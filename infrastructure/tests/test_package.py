"""physai-infrastructure imports on its own (its CLI group is tested in core)."""

import physai.infrastructure


def test_package_has_a_version() -> None:
    assert physai.infrastructure.__version__.count(".") >= 2
