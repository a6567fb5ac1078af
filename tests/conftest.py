import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole test session (2 cores, like CI)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Workers import test-only stages (tests.fault_stages) by module name.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def in_repo_root(monkeypatch):
    """Configs name paths relative to the repo root, as `make corpus` runs."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture(scope="session")
def sample_run(ray_local, tmp_path_factory):
    """`make corpus`'s pipeline run once on the embedded sample, shared by the end-to-end tests."""
    from pipelines.config import load_config
    from pipelines.corpus import run

    out = str(tmp_path_factory.mktemp("corpus") / "out")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        stats = run(load_config("configs/corpus.yaml", {"output.dir": out}))
    finally:
        os.chdir(cwd)
    return out, stats
