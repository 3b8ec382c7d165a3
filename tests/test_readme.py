"""README.md must stay true: its first two commands are the documented ones,
and its Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
CI_RUN = (Path(__file__).parent.parent / ".ci" / "run").read_text(encoding="utf-8")


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_demo_command_then_the_test_command() -> None:
    demo, tests = (block.strip() for block in shell_blocks()[:2])
    assert demo.endswith("usersession demo")
    assert tests.endswith("python -m pytest")
    assert README.index(demo) < README.index("## ")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    tests = shell_blocks()[1].strip()
    assert tests in CI_RUN.splitlines()


def test_the_quick_start_runs_as_written() -> None:
    quick_start = re.search(r"## Quick start\n.*?```python\n(.*?)```", README, flags=re.S)
    assert quick_start is not None
    namespace: dict[str, object] = {}
    exec(compile(quick_start.group(1), "README.md", "exec"), namespace)
    assert namespace["removed"] == 0
    assert namespace["renewed_id"] is None
