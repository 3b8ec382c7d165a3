"""The command line: `usersession demo` is the main job and must keep telling
its story; `python -m usersession` is the same command."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from usersession import InMemorySessionStorage, cli, demo


def test_the_demo_walks_through_a_sessions_whole_life() -> None:
    lines: list[str] = []
    demo.run(lines.append)
    story = "\n".join(lines)
    for step in (
        "FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE",
        "USER_SESSION_EXPIRED",
        "this read renewed the session",
        "still works (renewed: None)",
        "the old id is gone: USER_SESSION_NOT_FOUND",
        "from a context that names no device: refused",
        "same login: it began 12 h ago",
        "'log out that device' from a devices page: True",
        "(delete_all keep=) removes 3",
        "the laptop logs out: 1 session of its login",
        "logging out again removes 0",
        "the storage holds 0 sessions",
    ):
        assert step in story
    assert "removed: IDLE" in story and "removed: RENEWED" in story


def test_the_demo_never_prints_a_raw_session_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every session the demo creates leaves its storage by the end (it holds
    # 0 sessions), so a listener on that storage sees every id it issued.
    # (Wrapping UserSessionManager.create instead would not work on the
    # compiled build: a compiled class cannot be monkeypatched.)
    issued: list[str] = []

    def record(subject: str, session_id: str, metadata: object, reason: object) -> None:
        issued.append(session_id)

    def recording_storage(**options: Any) -> InMemorySessionStorage:
        storage = InMemorySessionStorage(**options)
        storage.add_listener(record)
        return storage

    monkeypatch.setattr(demo, "InMemorySessionStorage", recording_storage)
    lines: list[str] = []
    demo.run(lines.append)
    story = "\n".join(lines)
    assert len(issued) >= 5
    assert not [session_id for session_id in issued if session_id in story]


def test_the_command_runs_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    assert "usersession demo" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "usersession", "demo"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "the storage holds 0 sessions" in done.stdout
