"""physai-evaluation imports on its own (its command group is tested with the CLI in core)."""

import physai.evaluation


def test_package_has_a_version() -> None:
    assert physai.evaluation.__version__.count(".") >= 2
