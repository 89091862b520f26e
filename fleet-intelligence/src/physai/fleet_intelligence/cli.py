"""The `physai fleet-intelligence` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "fleet-intelligence",
    help="Fleet telemetry, its store, drift detection, dashboards and retraining triggers.",
)
