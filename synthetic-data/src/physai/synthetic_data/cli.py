"""The `physai synthetic-data` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "synthetic-data",
    help="Simulated demonstrations, domain randomization, augmentation and Cosmos jobs.",
)
