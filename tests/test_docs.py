"""README.md and docs/*.md document every setting and make target that exists, and no
other, and their links to each other resolve."""

import re
from pathlib import Path

from lodestone.settings import Settings

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*PAGES, ROOT / "examples" / "README.md"]
DOCS = "\n".join(page.read_text() for page in PAGES)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_every_setting_is_documented():
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in DOCS]
    assert missing == []


def test_documented_variables_exist():
    documented = set(re.findall(r"^[ \t]*\| `([A-Z_]+)`(?: / `([A-Z_]+)`)?", DOCS, re.M))
    names = {n for pair in documented for n in pair if n}
    assert names <= {n.upper() for n in Settings.model_fields}, names - {n.upper() for n in Settings.model_fields}


def test_make_targets_match():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    documented = set(re.findall(r"`make ([a-z-]+)", DOCS))
    assert documented <= targets, documented - targets
    assert {"run", "test", "demo"} <= documented
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t)]


def test_relative_links_resolve():
    broken = []
    for page in LINKED:
        for target in relative_links(page):
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_link_check_sees_links():
    """The checks above read every page and find its links: the README links into docs/."""
    assert len(PAGES) >= 8
    readme_links = relative_links(ROOT / "README.md")
    assert any(link.startswith("docs/") for link in readme_links)
    assert "operator-cli-lodestone-ops" in anchors(ROOT / "docs" / "operations.md")
