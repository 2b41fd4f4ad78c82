"""environment.yml and pyproject.toml describe one environment.

Why: conda users (and Binder) install from environment.yml alone, pip users from
pyproject.toml; a dependency added to one and forgotten in the other breaks one of them
silently, on someone else's machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).parents[1]


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["test"]
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def _environment_requirements() -> dict[str, Requirement]:
    """conda-forge entries and pip entries alike, as PEP 508 requirements (conda's
    ``name>=x`` spelling is the same; ``name=x`` is conda's pin and is read as ``==x``)."""
    dependencies = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    entries = [d for d in dependencies if isinstance(d, str)]
    entries += [
        d
        for d in next(d["pip"] for d in dependencies if isinstance(d, dict))
        if not d.startswith("-")
    ]
    requirements = {}
    for entry in entries:
        if entry.split("=")[0] in ("python", "pip"):
            continue
        if "=" in entry and not any(op in entry for op in ("==", ">=", "<=")):
            entry = entry.replace("=", "==", 1)
        requirement = Requirement(entry)
        requirements[canonicalize_name(requirement.name)] = requirement
    return requirements


def test_every_dependency_is_in_both_files() -> None:
    assert set(_pyproject_requirements()) == set(_environment_requirements())


@pytest.mark.parametrize("name", sorted(_pyproject_requirements()))
def test_versions_agree(name: str) -> None:
    """Same specifier, or a pin (torch's CPU build) that the pyproject range allows."""
    wanted, given = _pyproject_requirements()[name], _environment_requirements()[name]
    pins = [spec.version for spec in given.specifier if spec.operator == "=="]
    if pins:
        assert wanted.specifier.contains(pins[0]), f"{name}: {given} outside {wanted}"
    else:
        assert given.specifier == wanted.specifier, f"{name}: {given} vs {wanted}"


def test_environment_python_is_allowed_by_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    python = next(d for d in dependencies if isinstance(d, str) and d.startswith("python="))
    version = python.split("=")[1]
    assert Requirement(f"python{project['requires-python']}").specifier.contains(version + ".0")
