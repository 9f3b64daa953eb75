"""Installing is quiet and ships every file the app reads at run time.

setuptools warns ("Package would be ignored") about each folder inside a package that is
not itself listed in ``packages`` but has files shipped from it: the templates and static
folders. The checks below read ``setup.cfg`` with the installed setuptools (pyramid
depends on it) as a build does, without building anything; both it and the newer one
``pip install .`` builds with warn on the same layouts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from conftest import ROOT
from setuptools.dist import Distribution

TOP_LEVEL = ("dancecat_core", "dancecat_plugins", "dancecat_web")
NOT_SHIPPED = ("__pycache__",)


def shipped_tree_files() -> set[str]:
    """Every file under the three packages, as paths relative to the repository root."""
    return {
        path.relative_to(ROOT).as_posix()
        for top in TOP_LEVEL
        for path in (ROOT / top).rglob("*")
        if path.is_file() and not set(path.relative_to(ROOT).parts) & set(NOT_SHIPPED)
    }


@pytest.fixture
def build_py(monkeypatch: pytest.MonkeyPatch):
    """setuptools' build_py for this project, configured from setup.cfg, and its warnings."""
    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = Distribution({"script_name": "setup.py"})
        dist.parse_config_files([str(ROOT / "setup.cfg")])
        command = dist.get_command_obj("build_py")
        command.ensure_finalized()
        data_files = command.data_files
    return dist, data_files, [str(w.message) for w in caught]


def test_setuptools_has_nothing_to_warn_about(build_py) -> None:
    _, _, messages = build_py
    assert messages == []


def test_every_folder_with_shipped_files_is_a_listed_package(build_py) -> None:
    dist, _, _ = build_py
    folders = {str(Path(name).parent).replace("/", ".") for name in shipped_tree_files()}
    assert folders - set(dist.packages) == set()


def test_templates_static_files_and_migrations_ship(build_py) -> None:
    """Every non-Python file of the packages is package data; the Python files are modules."""
    dist, data_files, _ = build_py
    shipped_data = {
        (Path(source) / name).relative_to(ROOT).as_posix() if Path(source).is_absolute()
        else (Path(source) / name).as_posix()
        for _, source, _, names in data_files
        for name in names
    }
    tree = shipped_tree_files()
    assert {name for name in tree if not name.endswith(".py")} <= shipped_data
    modules = {name for name in tree if name.endswith(".py")}
    assert {str(Path(name).parent).replace("/", ".") for name in modules} <= set(dist.packages)
    assert any(name.startswith("dancecat_web/templates/") for name in shipped_data)
    assert "dancecat_web/static/vendor/codemirror/codemirror.js" in shipped_data
    assert "dancecat_core/migrations/script.py.mako" in shipped_data
