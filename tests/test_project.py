"""The project's own metadata stays consistent: pyproject.toml and requirements.txt pin the same set."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_dependencies_equal_requirements_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert set(project["dependencies"]) == pins
    dev = {
        line.strip()
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert set(project["optional-dependencies"]["dev"]) == dev
    assert project["scripts"]["neuroscope"] == "neuroscope.__main__:main"


def test_only_config_reads_the_environment():
    readers = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "neuroscope").rglob("*.py")
        if p.name != "config.py" and any(s in p.read_text() for s in ("os.environ", "os.getenv", "getenv("))
    ]
    assert readers == [], f"read settings through neuroscope.config: {readers}"


def test_one_version_number():
    import tomllib

    import neuroscope

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert neuroscope.__version__ == project["version"]
