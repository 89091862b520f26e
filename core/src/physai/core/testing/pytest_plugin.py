"""pytest plugin (entry point `pytest11`): fixtures for the real services physai tests use.

Registered by physai-core, so every package's tests can ask for `azurite` or `mlflow_server`
without a conftest. Each fixture starts its service on 127.0.0.1 and stops it afterwards.
"""

from physai.core.testing.azurite import azurite
from physai.core.testing.mlflow_server import mlflow_server

__all__ = ["azurite", "mlflow_server"]
