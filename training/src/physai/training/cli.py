"""The `physai training` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "training",
    help="RL (skrl, RSL-RL) and IL/VLA (LeRobot) training, export, packaging and registration.",
)
