"""The README and docs/ hold together: every relative link resolves, every document the code cites
is in the repository (with the section it names), the README stays a newcomer's page (at most
10 KB), and the commands CI runs are the README's."""

import re
import unicodedata
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
README_LIMIT = 10_240  # bytes

# Where code, configuration and tests may cite a document.
CODE_GLOBS = (
    "src/**/*.py",
    "stages/*.py",
    "benchmarks/*.py",
    "benchmarks/*.sh",
    "tests/**/*.py",
    "params.yaml",
    "dvc.yaml",
    "pipelines/*/dvc.yaml",
    ".ci/run",
)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# docs/name.md, optionally followed by the section it cites: docs/fidelity.md, "MNIST setup"
DOC_CITATION = re.compile(r"(?<![\w/.-])(docs/[\w.-]+\.md)(?:,\s*\"([^\"]+)\")?")
README_CITATION = re.compile(r"README(?:'s)?,?\s+\"([^\"]+)\"")
# Any other in-repository markdown file named by a path: it must exist.
MD_PATH = re.compile(r"(?<![\w/.-])((?:metrics|benchmarks|results|docs)/[\w./-]*\.md)\b")


def headings(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+)$", text, flags=re.MULTILINE)]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def code_files() -> list[Path]:
    files = {p for glob in CODE_GLOBS for p in REPO.glob(glob) if p.is_file()}
    this = Path(__file__).resolve()  # its examples of wrong citations are meant to be wrong
    return sorted(p for p in files if "egg-info" not in str(p) and p.resolve() != this)


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


def broken_link(source: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ... not checked offline
        return None
    file_part, _, fragment = target.partition("#")
    path = (source.parent / file_part).resolve() if file_part else source
    if not path.exists():
        return f"{target}: no such file"
    if fragment and path.suffix == ".md" and fragment not in {anchor(h) for h in headings(path)}:
        return f"{target}: no heading with anchor #{fragment} in {path.name}"
    return None


def test_the_readme_is_at_most_10_kb():
    size = README.stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail to docs/ (limit {README_LIMIT})"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = [msg for target in links(page) if (msg := broken_link(page, target))]
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def citation_problems(text: str, where: str) -> list[str]:
    """What a file's text cites that the repository lacks: a document, a section of one, a README
    section, a markdown path, or a specification outside the repository."""
    problems = []
    for match in DOC_CITATION.finditer(text):
        doc, section = REPO / match.group(1), match.group(2)
        if not doc.is_file():
            problems.append(f"{where}: {match.group(1)} does not exist")
        elif section and section not in headings(doc):
            problems.append(f"{where}: {match.group(1)} has no section {section!r}")
    for match in README_CITATION.finditer(text):
        if match.group(1) not in headings(README):
            problems.append(f"{where}: README has no section {match.group(1)!r}")
    for match in MD_PATH.finditer(text):
        if not (REPO / match.group(1)).exists():
            problems.append(f"{where}: {match.group(1)} does not exist")
    if "spec.md" in text:
        problems.append(f"{where}: cites a specification outside the repository (use docs/fidelity.md)")
    return problems


def test_every_document_the_code_cites_is_in_the_repository_with_its_section():
    missing = [problem for path in code_files()
               for problem in citation_problems(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert not missing, "\n".join(missing)


def test_the_checker_sees_a_broken_link_a_missing_section_and_a_foreign_spec(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [bad](#nowhere) [gone](missing.md)\n")
    problems = [msg for target in links(page) if (msg := broken_link(page, target))]
    assert len(problems) == 2 and "#nowhere" in problems[0] and "missing.md" in problems[1]
    cited = ('x (docs/fidelity.md, "No such section"; README "Nowhere"; docs/gone.md; '
             'docs/fidelity.md, "MNIST setup"; paper-2014-spec.md)')
    assert citation_problems(cited, "x.py") == [
        "x.py: docs/fidelity.md has no section 'No such section'",
        "x.py: docs/gone.md does not exist",
        "x.py: README has no section 'Nowhere'",
        "x.py: docs/gone.md does not exist",
        "x.py: cites a specification outside the repository (use docs/fidelity.md)",
    ]


def test_the_commands_ci_runs_are_the_readmes():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    commands = [line.strip() for line in ci.splitlines() if line.strip().startswith("python -m ")]
    assert len(commands) == 2, commands  # the setup and the whole suite
    for command in commands:
        assert command in readme, f"README.md does not give CI's command: {command}"
    assert "\ndvc repro " in readme or "\ndvc repro\n" in readme
