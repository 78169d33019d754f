"""The repository cites only itself: no file names the developers' notes kept outside the repository
(the method notes, the style notes, the Keras notes), every `docs/<page>.md#<anchor>` cited in the code,
the tests, experiments/, benchmarks/, README.md and docs/ names an existing page and heading, and every
relative Markdown link in those Markdown files resolves. Plain text only: no tensorflow, well under a
second."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("kerasdec", "tests", "experiments", "benchmarks")
SUFFIXES = (".py", ".md")
ROOT_FILES = ("README.md", "ruff.toml", "setup.cfg", "pyproject.toml")
# Spelled in pieces so that this file does not name them itself.
OUTSIDE_NOTES = tuple(name + ".md" for name in ("METHOD", "STYLE", "KERAS_NOTES"))
# docs pages cited before they are committed: the page is written on its own branch. A missing page
# listed here is tolerated; once the page exists its anchors are checked like any other's.
PENDING_PAGES: dict[str, str] = {}  # docs pages cited before they are written (none now)

DOCS_REF = re.compile(r"(?<![\w./-])(?:\.\./)?docs/([\w.-]+?\.md)(?:#([\w-]+))?")
MD_LINK = re.compile(r"\]\(([^()\s]*)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def scanned_files() -> Iterator[Path]:
    """The .py and .md files of SCANNED_DIRS, README.md and docs/*.md (caches and results skipped)."""
    for folder in SCANNED_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))


def shown(path: Path) -> str:
    """A file's name in a failure message: relative to the repository where it lies inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def github_slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: the rendered text (code marks and link targets dropped),
    lowercase, every character but letters, digits, underscores, hyphens and spaces removed, spaces
    turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page; repeated headings get -1, -2, ... as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        match = None if in_code else HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_docs_refs(files: list[Path]) -> list[str]:
    """Every `docs/<page>.md[#anchor]` in ``files`` whose page or heading does not exist."""
    cache: dict[Path, set[str]] = {}
    broken = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for page_name, anchor in DOCS_REF.findall(line):
                page = ROOT / "docs" / page_name
                where = f"{shown(path)}:{number}: docs/{page_name}"
                if not page.is_file():
                    if page_name not in PENDING_PAGES:
                        broken.append(f"{where}: no such page")
                    continue
                if anchor and anchor not in cache.setdefault(page, anchors(page)):
                    broken.append(f"{where}#{anchor}: no such heading")
    return broken


def broken_md_links(files: list[Path]) -> list[str]:
    """Every relative Markdown link `[text](target[#anchor])` in the .md ``files`` whose file or heading
    does not exist (web addresses are not followed)."""
    broken = []
    for path in (p for p in files if p.suffix == ".md"):
        in_code = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line):
                in_code = not in_code
            if in_code:
                continue
            for target in MD_LINK.findall(line):
                if not target or re.match(r"[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                linked = (path.parent / file_part).resolve() if file_part else path
                where = f"{shown(path)}:{number}: {target}"
                if not linked.exists():
                    if not (linked.parent == ROOT / "docs" and linked.name in PENDING_PAGES):
                        broken.append(f"{where}: no such file")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    broken.append(f"{where}: no such heading")
    return broken


def test_github_slug_matches_the_anchors_github_makes():
    assert github_slug("Loss and schedule") == "loss-and-schedule"
    assert github_slug("Frequency-of-use sampling") == "frequency-of-use-sampling"
    assert github_slug("TFLite (LiteRT)") == "tflite-litert"
    assert github_slug("Your own data: `folder`") == "your-own-data-folder"
    assert (github_slug("Several machines (`--distribute multiworker`)")
            == "several-machines---distribute-multiworker")
    assert github_slug("What each artifact costs (measured)") == "what-each-artifact-costs-measured"


def test_anchors_skip_code_blocks_and_number_repeats(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n## Notes\n```bash\n# a shell comment\n```\n## Notes\n", encoding="utf-8")
    assert anchors(page) == {"title", "notes", "notes-1"}


def test_no_file_names_the_notes_kept_outside_the_repository():
    files = [*scanned_files(), *(ROOT / name for name in ROOT_FILES if (ROOT / name).is_file())]
    this = Path(__file__).resolve()
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in files if path.resolve() != this
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if any(name in line for name in OUTSIDE_NOTES)]
    assert not hits, "cite docs/<page>.md#<anchor> instead:\n" + "\n".join(hits)


def test_every_cited_docs_page_and_anchor_exists():
    files = list(scanned_files())
    assert len(files) > 50 and ROOT / "docs" / "method.md" in files  # the walk really found the tree
    broken = broken_docs_refs(files)
    assert not broken, "\n".join(broken)


def test_every_relative_markdown_link_resolves():
    broken = broken_md_links(list(scanned_files()))
    assert not broken, "\n".join(broken)


def test_a_wrong_anchor_or_page_is_reported(tmp_path):
    # The checkers themselves, on files outside the tree: real pages, anchors and links pass; a wrong
    # anchor, a missing page and a broken link are each named with file and line.
    # (The wrong names are put together at run time, so that this file does not cite them itself.)
    wrong_anchor, missing_page = "docs/method.md#" + "no-such-heading", "docs/" + "nothing.md"
    cited = tmp_path / "cited.py"
    cited.write_text(f"# docs/method.md#network, docs/run-directory.md#guarantees\n"
                     f"# {wrong_anchor}\n# see {missing_page}\n", encoding="utf-8")
    assert broken_docs_refs([cited]) == [f"cited.py:2: {wrong_anchor}: no such heading",
                                         f"cited.py:3: {missing_page}: no such page"]
    linking = tmp_path / "linking.md"
    linking.write_text(f"[a]({ROOT}/docs/method.md#evaluation) [b](#here)\n# Here\n[c](missing.md)\n"
                       f"[d]({ROOT}/docs/method.md#evaluations)\n", encoding="utf-8")
    assert broken_md_links([linking]) == [
        "linking.md:3: missing.md: no such file",
        f"linking.md:4: {ROOT}/docs/method.md#evaluations: no such heading"]
