"""The two builds: `usersession.compiled` tells the truth, the command line
says which build runs, and an editable install never has a compiled module
anywhere on the import path."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

import usersession
from usersession import cli
from usersession._build import COMPILED_MODULES, compiled_modules

SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def test_compiled_says_whether_the_hot_modules_are_extensions() -> None:
    modules = [sys.modules[name] for name in COMPILED_MODULES]
    extensions = [str(module.__file__).endswith(SUFFIXES) for module in modules]
    assert usersession.compiled is all(extensions)
    assert compiled_modules() == dict(zip(COMPILED_MODULES, extensions, strict=True))
    # Either all of them or none: a half-compiled package is a broken build.
    assert len(set(extensions)) == 1


def test_the_compiled_run_of_ci_really_runs_the_compiled_build() -> None:
    if os.environ.get("USERSESSION_EXPECT_COMPILED") != "1":
        pytest.skip("only .ci/run's compiled run sets USERSESSION_EXPECT_COMPILED=1")
    assert usersession.compiled
    source = Path(__file__).resolve().parent.parent / "src"
    assert source not in Path(usersession.__file__).resolve().parents


def test_a_pure_build_has_no_compiled_module_anywhere_on_the_path() -> None:
    if usersession.compiled:
        pytest.skip("the compiled build")
    found = []
    for entry in map(Path, sys.path):
        if entry.is_dir():
            found += [
                str(path) for path in entry.glob("usersession*") if path.name.endswith(SUFFIXES)
            ]
            found += [
                str(path) for path in entry.glob("usersession/**/*") if path.name.endswith(SUFFIXES)
            ]
    assert found == []


def test_version_and_info_name_the_build_python_and_platform(
    capsys: pytest.CaptureFixture[str],
) -> None:
    build = "compiled (mypyc)" if usersession.compiled else "pure Python"
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    version = capsys.readouterr().out.strip()
    assert version.startswith(f"usersession {usersession.__version__}, {build}, ")
    assert sys.version.split()[0] in version
    assert cli.main(["info"]) == 0
    info = capsys.readouterr().out
    assert info.splitlines()[0] == version
    for name in COMPILED_MODULES:
        assert name in info


def test_the_installed_command_reports_the_same_build() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "usersession", "info"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    build = "compiled (mypyc)" if usersession.compiled else "pure Python"
    assert build in done.stdout.splitlines()[0]
