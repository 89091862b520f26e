"""The `physai data-pipeline` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "data-pipeline",
    help="ROS 2 episodic capture, bag to LeRobot conversion, and upload to storage.",
)
