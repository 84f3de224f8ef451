"""The quickstart fixture, once per session, and the bench script's runner."""

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fixture  # noqa: E402


@pytest.fixture(scope="session")
def quickstart_model(tmp_path_factory):
    return fixture.build_model(tmp_path_factory.mktemp("quickstart") / "model")


@pytest.fixture(scope="session")
def bench():
    """bench/trl_quickstart.py as a module (its run_script runs a quickstart script)."""
    path = HERE.parents[1] / "bench" / "trl_quickstart.py"
    spec = importlib.util.spec_from_file_location("trl_quickstart", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
