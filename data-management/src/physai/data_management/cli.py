"""The `physai data-management` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "data-management",
    help="The LeRobot dataset library, validation, quality scores, labels and zero-copy curation.",
)
