"""README's "Web apps" section runs as written: its FastAPI and Flask
examples log in and list the device, and the example app's command names a
file that exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = re.search(r"## Web apps\n(.*?)\n## ", README, flags=re.S)


def python_blocks() -> list[str]:
    assert SECTION is not None, "README has no 'Web apps' section"
    return re.findall(r"```python\n(.*?)```", SECTION.group(1), flags=re.S)


def run_block(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(source, "README.md", "exec"), namespace)
    return namespace


@pytest.mark.anyio
async def test_the_fastapi_example_logs_in_and_lists_the_device() -> None:
    [fastapi_block] = [block for block in python_blocks() if "FastAPI" in block]
    app = run_block(fastapi_block)["app"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://app.example") as client:
        assert (await client.get("/devices")).status_code == 401
        assert (await client.post("/login")).status_code == 200
        devices = await client.get("/devices")
    assert devices.status_code == 200
    [entry] = devices.json()
    assert entry["this_device"] is True


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_flask_example_logs_in_and_lists_the_device() -> None:
    [flask_block] = [block for block in python_blocks() if "Flask" in block]
    app = run_block(flask_block)["app"]
    client = app.test_client()
    assert client.get("/devices", base_url="https://app.example").status_code == 401
    assert client.post("/login", base_url="https://app.example").status_code == 200
    devices = client.get("/devices", base_url="https://app.example")
    assert devices.status_code == 200
    assert devices.json == [{"ip": "127.0.0.1", "this_device": True}]


def test_the_example_app_command_names_the_example() -> None:
    assert SECTION is not None
    assert ".venv/bin/python examples/devices_app.py" in SECTION.group(1)
    assert (ROOT / "examples" / "devices_app.py").is_file()
