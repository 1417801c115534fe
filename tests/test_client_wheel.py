"""The client as a bot gets it: a wheel built from client/ without network (the setuptools of
requirements-dev.txt, no build isolation), installed into a fresh virtualenv that has nothing
else, where it imports, is typed, reads its rules and spools a conversation. Also on the oldest
Python it supports (3.9) when this machine has one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "client"

IN_THE_NEW_ENVIRONMENT = """
import importlib.metadata, importlib.resources, json, sys, tempfile, os
import supportanalytics_client
from supportanalytics_client import AnalyticsTracker, SpoolFull, SupportAnalyticsError

package = importlib.resources.files("supportanalytics_client")
assert package.joinpath("py.typed").is_file()
assert json.loads(package.joinpath("rules.json").read_text())["paths"]["ingest"] == "/api/conversations/"
assert importlib.metadata.version("supportanalytics-client") == supportanalytics_client.__version__
assert importlib.metadata.requires("supportanalytics-client") is None  # the standard library only
assert issubclass(SpoolFull, SupportAnalyticsError)
assert "site-packages" in supportanalytics_client.__file__

spool = os.path.join(tempfile.mkdtemp(), "spool.sqlite3")
tracker = AnalyticsTracker("http://127.0.0.1:9", "key", spool, log_file="data/analytics.jsonl")
tracker.log_conversation("abc-123", 4, True, ["billing", "refund"], [820, 1140], csat=5)
try:
    tracker.log_conversation("abc-124", -1, True, ["billing"], [820])
except ValueError as error:
    assert str(error) == "turns: must be at least 0", error
else:
    raise AssertionError("no ValueError")
print(tracker.flush(0.2), sys.version_info[:2])
tracker.close(timeout=0)
"""


def _oldest_supported_python() -> str | None:
    candidates = [
        shutil.which("python3.9"),
        *map(str, Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")),
    ]
    for candidate in filter(None, candidates):
        check = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True, check=False)  # fmt: skip
        if check.returncode == 0 and check.stdout.strip() == "(3, 9)":
            return candidate
    return None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("source") / "client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "--wheel-dir", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (built,) = wheels.glob("supportanalytics_client-*-py3-none-any.whl")
    return built


@pytest.mark.parametrize("python", ["this", "3.9"])
def test_the_wheel_installs_into_a_fresh_virtualenv_and_works(wheel, tmp_path, python):
    interpreter = sys.executable if python == "this" else _oldest_supported_python()
    if interpreter is None:
        pytest.skip("no Python 3.9 on this machine")
    environment = tmp_path / "venv"
    subprocess.run([interpreter, "-m", "venv", "--without-pip", str(environment)], check=True, timeout=120)
    python_there = environment / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python_there), "install", "--quiet",
         "--disable-pip-version-check", "--no-index", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    run = subprocess.run(
        [str(python_there), "-c", IN_THE_NEW_ENVIRONMENT],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    flushed, version = run.stdout.strip().split(" ", 1)
    assert flushed == "1"  # nothing listens there: the conversation waits in the spool
    assert version == ("(3, 9)" if python == "3.9" else str(sys.version_info[:2]))
