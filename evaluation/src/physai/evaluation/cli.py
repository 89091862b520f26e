"""The `physai evaluation` command group."""

from physai.core.cli import domain_app

app = domain_app(
    "evaluation",
    help="Closed-loop SiL/HiL evaluation, open-loop replay, gates and a policy server.",
)
