"""The README and the documents it links ship with the repository: every relative link
resolves to a file inside it (never ../shared, which a user does not have), and every
#anchor names a heading of the target."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: [text](target) and ![alt](target); a target ends at whitespace or ')'
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(md: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", md.read_text(encoding="utf-8"), flags=re.S)  # code blocks
    return LINK.findall(text)


def slugs(md: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    out = set()
    for line in md.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
            title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link: its text
            out.add(re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"))
    return out


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repository(md):
    checked = 0
    for target in links(md):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        assert dest.is_relative_to(ROOT), f"{md.name}: {target} points outside the repository"
        assert dest.exists(), f"{md.name}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in slugs(dest), f"{md.name}: {target}: no heading #{anchor}"
        checked += 1
    if md.name == "README.md":
        assert checked >= 3  # the contract, the rules and the figure at least


def test_the_readme_links_the_contract_and_the_rules_in_docs():
    targets = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    assert {"docs/json_contract.md", "docs/lr_rules.md"} <= targets
    assert not any("shared" in t for t in targets)


def test_link_checker_catches_a_dangling_link(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("see [c](../shared/docs/json_contract.md) and [r](r.md#nope)\n"
                  "```\n[not a link](in/a/code/block.md)\n```\n# R\n")
    assert links(md) == ["../shared/docs/json_contract.md", "r.md#nope"]
    assert slugs(md) == {"r"}
