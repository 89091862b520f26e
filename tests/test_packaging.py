"""`uv build --all-packages` gives nine wheels, each installable and importable on its own."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from physai_workspace import PACKAGES, ROOT, module_of, pyproject

pytestmark = pytest.mark.slow
UV = shutil.which("uv")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if UV is None:
        pytest.fail("uv is not on PATH: install it with `python3 -m pip install uv`")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [UV, "build", "--all-packages", "--wheel", "--out-dir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    built = {p.name.split("-")[0].replace("_", "-"): p for p in out.glob("*.whl")}
    return built


@pytest.fixture(scope="module")
def locked_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lock's versions as pip constraints, so each fresh venv gets what uv.lock says."""
    assert UV is not None
    path = tmp_path_factory.mktemp("lock") / "constraints.txt"
    subprocess.run(
        [UV, "export", "--frozen", "--all-packages", "--all-extras", "--no-emit-workspace",
         "--no-hashes", "--no-header", "-o", str(path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )  # fmt: skip
    return path


def test_nine_wheels_with_own_versions_changelogs_and_specs(wheels: dict[str, Path]) -> None:
    assert sorted(wheels) == sorted(f"physai-{p}" for p in PACKAGES)
    for package in PACKAGES:
        wheel = wheels[f"physai-{package}"]
        version = pyproject(package)["project"]["version"]  # type: ignore[index]
        assert f"-{version}-" in wheel.name
        names = zipfile.ZipFile(wheel).namelist()
        folder = module_of(package).replace(".", "/")
        assert f"{folder}/CHANGELOG.md" in names
        assert any(n.startswith(f"{folder}/specifications/") for n in names)
        assert "physai/__init__.py" not in names  # the namespace stays open


def domain_deps(package: str) -> list[str]:
    """This package's wheel and the physai domains it depends on (core comes anyway)."""
    requires = pyproject(package)["project"]["dependencies"]  # type: ignore[index]
    names = [re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0] for r in requires]
    return [f"physai-{package}", *(n for n in names if n.startswith("physai-"))]


@pytest.mark.parametrize("package", PACKAGES)
def test_domain_installs_alone_and_imports(
    package: str, wheels: dict[str, Path], locked_versions: Path, tmp_path: Path
) -> None:
    """A fresh venv with only this package (and core) installed from the built wheels."""
    assert UV is not None
    venv = tmp_path / "venv"
    subprocess.run(
        [UV, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True
    )
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--python",
            str(python),
            "-c",
            str(locked_versions),
            *sorted({str(wheels[name]) for name in ("physai-core", *domain_deps(package))}),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    code = (
        f"import sys, {module_of(package)}\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'azure', 'mlflow')]\n"
        "assert not heavy, heavy\n"
        "print('ok')"
    )
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    args = ["specs", "--domain", "core"] if package == "core" else [package, "specs"]
    cli = subprocess.run(
        [str(venv / "bin" / "physai"), *args, "--json"], capture_output=True, text=True
    )
    assert cli.returncode == 0, cli.stderr
    assert f'"{package}.' in cli.stdout
