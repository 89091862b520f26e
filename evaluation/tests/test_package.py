"""physai-evaluation imports on its own (its CLI group is tested in core)."""

import physai.evaluation


def test_package_has_a_version() -> None:
    assert physai.evaluation.__version__.count(".") >= 2
