"""The `physai infrastructure` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "infrastructure",
    help="Terraform modules, cluster setup, and Terraform outputs turned into physai settings.",
)
