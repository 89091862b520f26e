"""physai-fleet-intelligence imports on its own (its CLI group is tested in core)."""

import physai.fleet_intelligence


def test_package_has_a_version() -> None:
    assert physai.fleet_intelligence.__version__.count(".") >= 2
