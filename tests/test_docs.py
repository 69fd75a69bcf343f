"""The README documents every setting and make target that exists, and no other."""

import re
from pathlib import Path

from lodestone.settings import Settings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented():
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in README]
    assert missing == []


def test_documented_variables_exist():
    documented = set(re.findall(r"^\| `([A-Z_]+)`(?: / `([A-Z_]+)`)?", README, re.M))
    names = {n for pair in documented for n in pair if n}
    assert names <= {n.upper() for n in Settings.model_fields}, names - {n.upper() for n in Settings.model_fields}


def test_make_targets_match():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    documented = set(re.findall(r"`make ([a-z-]+)", README))
    assert documented <= targets, documented - targets
    assert {"run", "test", "demo"} <= documented
