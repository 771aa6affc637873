"""The front page and the docs stay true: the README is short and lists every command, every
relative link and anchor in the Markdown resolves, the README's commands parse with the
current command line, and the license and citation files are in place."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from test_recipes import PRINT_CONFIG, entry_points, run_jobs, subcommand, tail

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "results" / "README.md",
                ROOT / "tests" / "fixtures" / "README.md", *(ROOT / "docs").rglob("*.md")])
README_MAX_LINES = 300
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
"""A Markdown link's target (images included via the same form, but not `![`)."""


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to
    dashes."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (repeats get GitHub's -1, -2 suffixes)."""
    seen: dict[str, int] = {}
    out = set()
    for line in re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            out.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return out


def broken_links(page: Path) -> list[str]:
    out = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            out.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{target}: no heading #{anchor} in {dest.name}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(page):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_link_check_sees_a_broken_link_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n[ok](#a-title) [gone](missing.md) [bad](#no-such)\n"
                    "`[code](not-a-link.md)`\n")
    assert broken_links(page) == ["missing.md: no such file",
                                  "#no-such: no heading #no-such in page.md"]


def test_slugs_follow_github():
    assert slug("A map agent: what a map buys, and the learned agent's 32 steps") == \
        "a-map-agent-what-a-map-buys-and-the-learned-agents-32-steps"
    assert slug("Simulator (`sim/`)") == "simulator-sim"
    assert slug("Evaluation and baselines") == "evaluation-and-baselines"


def test_readme_is_short_and_lists_every_command():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for program in entry_points():
        assert f"`{program}" in text, f"README.md: the command index lacks {program}"
        assert f"## {program}" in (ROOT / "docs" / "cli.md").read_text(), program
    for command in ("bash scripts/quickstart.sh", "bash scripts/test.sh"):
        assert command in text


def readme_commands() -> list[list[str]]:
    """The spoc-* commands of the README's bash blocks, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv and argv[0].startswith("spoc-"):
                out.append(argv)
    return out


def test_readme_commands_parse(tmp_path):
    """Every spoc-* command the README shows parses with the current command line
    (``--print_config``), without doing the work."""
    commands = readme_commands()
    assert len(commands) >= 5
    by_program: dict[str, list[list[str]]] = {}
    for argv in commands:
        if subcommand(argv) in PRINT_CONFIG.get(argv[0], set()):
            by_program.setdefault(argv[0], []).append(argv[1:] + ["--print_config"])
    failures = []
    for program, jobs in by_program.items():
        for args, result in zip(jobs, run_jobs(program, jobs, tmp_path)):
            if result["code"] != 0:
                failures.append(f"{program} {' '.join(args)}: {tail(result['stderr'])}")
    assert not failures, "\n".join(failures)


def test_license_and_citation():
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "Apache-2.0"
    assert cff["title"] and cff["message"] and cff["authors"]
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert str(cff["version"]) == version.group(1)
