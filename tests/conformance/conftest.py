"""Fixtures shared by the SDK conformance tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# npm alias -> the exact SDK version it must be (package.json / package-lock.json).
NODE_SDK_PACKAGES = {"cloudflare-5": "5.2.0", "cloudflare-7": "7.3.0"}


def installed_version(package: str) -> str | None:
    manifest = HERE / "node_modules" / package / "package.json"
    try:
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="session")
def node_sdk() -> str:
    """The `node` executable, with both npm SDK versions installed next to the scripts.

    The SDKs are installed from the committed package-lock.json (`npm ci`) when
    they are not installed already.
    """
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node, "node is required for the npm SDK conformance tests (Node 20+)"
    if any(installed_version(package) != version for package, version in NODE_SDK_PACKAGES.items()):
        assert npm, "npm is required to install the SDKs: run `npm ci --prefix tests/conformance`"
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    for package, version in NODE_SDK_PACKAGES.items():
        assert installed_version(package) == version, f"{package} is not {version} after npm ci"
    return node
