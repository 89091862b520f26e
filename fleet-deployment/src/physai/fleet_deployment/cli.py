"""The `physai fleet-deployment` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "fleet-deployment",
    help=(
        "Flux GitOps delivery, the approval gate service, the policy hot-loader "
        "and the ROS 2 inference node."
    ),
)
