"""The monorepo's shape: nine packages, one lock, namespace packages, imports only downhill."""

from __future__ import annotations

import ast
import re
import tomllib
from typing import Any

import pytest
from physai_workspace import PACKAGES, ROOT, module_of, pyproject


def test_root_is_a_virtual_workspace_with_one_lock() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in root  # virtual: no package of its own
    assert root["tool"]["uv"]["workspace"]["members"] == PACKAGES
    dev = root["dependency-groups"]["dev"]
    for tool in ("pytest", "hypothesis", "pytest-benchmark", "ruff", "mypy"):
        assert any(d.startswith(tool) for d in dev), tool
    assert (ROOT / "uv.lock").is_file()
    assert not list(ROOT.glob("*/uv.lock"))
    assert (ROOT / ".python-version").read_text().strip() == "3.12"


def test_lock_pins_torch_2_11() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    torch = [p for p in lock["package"] if p["name"] == "torch"]
    assert torch and all(p["version"].startswith("2.11.") for p in torch)
    training = pyproject("training")["project"]
    assert "torch==2.11.*" in training["dependencies"]  # type: ignore[index]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_the_full_folder_shape(package: str) -> None:
    base = ROOT / package
    for entry in ("pyproject.toml", "README.md", "CHANGELOG.md"):
        assert (base / entry).is_file(), f"{package}/{entry}"
    for folder in ("tests", "examples", "specifications", "iac"):
        assert (base / folder).is_dir(), f"{package}/{folder}"
    src = base / "src" / "physai"
    assert not (src / "__init__.py").exists(), "physai is a namespace package"
    assert (src / package.replace("-", "_") / "__init__.py").is_file()
    assert list((base / "specifications").glob("*.specification.md"))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_metadata(package: str) -> None:
    project: dict[str, Any] = pyproject(package)["project"]  # type: ignore[assignment]
    assert project["name"] == f"physai-{package}"
    assert project["requires-python"].startswith(">=3.12")
    changelog = (ROOT / package / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(project['version'])}\b", changelog, re.M), (
        f"{package}/CHANGELOG.md has no entry for {project['version']}"
    )
    if package != "core":
        assert any(d.startswith("physai-core") for d in project["dependencies"])
        assert project["entry-points"]["physai.cli"] == {package: f"{module_of(package)}.cli:app"}


def test_heavy_stacks_are_extras_not_dependencies() -> None:
    heavy = ("isaaclab", "ros-rclpy", "tensorrt", "azure", "adlfs")
    for package in PACKAGES:
        deps = pyproject(package)["project"]["dependencies"]  # type: ignore[index]
        assert not [d for d in deps if d.startswith(heavy)], package
    assert "isaaclab" in pyproject("training")["project"]["optional-dependencies"]  # type: ignore[index]
    assert "azure" in pyproject("core")["project"]["optional-dependencies"]  # type: ignore[index]


def _physai_imports(path: Any) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [n for n in names if n.startswith("physai.")]


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_only_go_downhill(package: str) -> None:
    """A domain imports core freely, another domain only through its public package."""
    own = module_of(package)
    for path in (ROOT / package / "src").rglob("*.py"):
        for name in _physai_imports(path):
            if name == own or name.startswith(own + "."):
                continue
            if package == "core":
                pytest.fail(f"{path}: core imports a domain ({name})")
            if name.startswith("physai.core"):
                continue
            top = ".".join(name.split(".")[:2])
            assert name == top, f"{path}: imports another domain's internals ({name})"


def test_every_package_has_a_path_filtered_workflow_and_one_imports_all() -> None:
    import yaml

    workflows = ROOT / ".github" / "workflows"
    for package in PACKAGES:
        doc = yaml.safe_load((workflows / f"{package}.yml").read_text())
        on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
        paths = on["pull_request"]["paths"]
        assert f"{package}/**" in paths and "uv.lock" in paths
    everything = yaml.safe_load((workflows / "imports.yml").read_text())
    on = everything.get("on", everything.get(True))
    assert "paths" not in (on.get("pull_request") or {})
    text = (workflows / "imports.yml").read_text()
    for package in PACKAGES:
        assert module_of(package) in text


def test_ci_script_is_executable_and_runs_the_readme_test_command() -> None:
    ci = ROOT / ".ci" / "run"
    assert ci.stat().st_mode & 0o111
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert command, "README must mark its test command with <!-- test-command -->"
    assert command.group(1).strip() in ci.read_text()
