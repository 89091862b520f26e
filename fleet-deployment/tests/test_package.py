"""physai-fleet-deployment imports on its own (its CLI group is tested in core)."""

import physai.fleet_deployment


def test_package_has_a_version() -> None:
    assert physai.fleet_deployment.__version__.count(".") >= 2
