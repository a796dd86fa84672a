"""The docs' test references name real tests, and every leakage-table row names one.

``docs/protocols.md``, ``docs/policy.md``, ``docs/audit.md``, ``docs/consent.md``,
``docs/suitability.md``, ``docs/serving.md`` and the README back their
privacy claims with tests, written as code spans: ``tests/path.py::test_name`` in full,
or ``::test_name`` / ``…::test_name`` for a test of the last full path before it in the
same document. Each referenced file must exist and each named test must be defined in
it (collected with ``ast``, never imported: module-level functions, ``Test*`` classes and
their methods; a ``[param]`` suffix names one case of a parametrised test). A leakage
table is a table with a "backed by" column; each of its rows must name at least one
test there, and protocols.md must have one per protocol section listed below.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = (
    ROOT / "docs" / "protocols.md",
    ROOT / "docs" / "policy.md",
    ROOT / "docs" / "audit.md",
    ROOT / "docs" / "consent.md",
    ROOT / "docs" / "suitability.md",
    ROOT / "docs" / "serving.md",
    ROOT / "README.md",
)
# Sections of protocols.md that must hold a leakage table: (## heading, ### heading or ""),
# each matched by how the heading starts.
LEAKAGE_SECTIONS = (
    ("## Signing keys", ""),
    ("## Same spec", ""),
    ("## Alignment", ""),
    ("## Validation split", ""),
    ("## Coordinated hetero logistic regression", ""),
    ("## Two-party hetero logistic regression", ""),
    ("## Scoring", ""),
    ("## SecureBoost", "### Who learns what"),
    ("## SecureBoost", "### Scoring"),
    ("## Online scoring", ""),
    ("## WOE and IV of host columns", ""),
    ("## The scorecard job", ""),
    ("## What the coordinator learns", ""),
    ("## Transport", ""),
)

_SPAN = re.compile(r"`([^`]+)`")
_NAME = r"::[A-Za-z_]\w*(?:\[[^\]]*\])?"
_FULL = re.compile(rf"(tests/[\w/.-]+\.py)((?:{_NAME})*)")
_SHORT = re.compile(rf"(?:…|\.\.\.)?((?:{_NAME})+)")


@dataclass(frozen=True)
class Ref:
    """One test reference: the file, the names after it (class, function), where it was."""

    file: str
    names: tuple[str, ...]
    line: int

    def __str__(self) -> str:
        return self.file + "".join(f"::{name}" for name in self.names)


def _names(suffix: str) -> tuple[str, ...]:
    return tuple(part.split("[", 1)[0] for part in suffix.split("::")[1:])


def references(text: str) -> list[tuple[Ref | None, int, str]]:
    """Every test reference in ``text``, in order: (ref, line, span text).

    ``ref`` is None for a short form with no full path before it.
    """
    found: list[tuple[Ref | None, int, str]] = []
    last_file: str | None = None
    for match in _SPAN.finditer(text):
        span = match.group(1).strip()
        line = text.count("\n", 0, match.start()) + 1
        full = _FULL.fullmatch(span)
        if full:
            last_file = full.group(1)
            found.append((Ref(last_file, _names(full.group(2)), line), line, span))
            continue
        short = _SHORT.fullmatch(span)
        if short:
            ref = Ref(last_file, _names(short.group(1)), line) if last_file else None
            found.append((ref, line, span))
    return found


@functools.cache
def defined_tests(path: Path) -> dict[str, frozenset[str]]:
    """Test functions and ``Test*`` classes (with their methods) defined in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    defined: dict[str, frozenset[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defined[node.name] = frozenset()
        elif isinstance(node, ast.ClassDef):
            defined[node.name] = frozenset(
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return defined


def problems(text: str, root: Path) -> list[str]:
    """What is wrong with ``text``'s test references, as messages naming the line."""
    found: list[str] = []
    for ref, line, span in references(text):
        if ref is None:
            found.append(f"line {line}: `{span}` has no full tests/…py path before it")
            continue
        path = root / ref.file
        if not path.is_file():
            found.append(f"line {line}: `{span}`: no file {ref.file}")
            continue
        if not ref.names:
            continue
        defined = defined_tests(path)
        head, *rest = ref.names
        if head not in defined:
            found.append(f"line {line}: `{span}`: {ref.file} defines no {head}")
        elif rest and (len(rest) > 1 or rest[0] not in defined[head]):
            found.append(f"line {line}: `{span}`: {ref.file}::{head} has no {'::'.join(rest)}")
    return found


@dataclass(frozen=True)
class Table:
    """A markdown table: header cells, rows' cells, its first line, the headings above it.

    ``section`` is the last ``#``/``##`` heading before it, ``subsection`` the last
    ``###`` (or deeper) heading inside that section, or "".
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    line: int
    section: str
    subsection: str = ""


def _cells(row: str) -> tuple[str, ...]:
    # A pipe escaped as \| is part of a cell.
    return tuple(cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|")))


def tables(text: str) -> list[Table]:
    """Every markdown table in ``text`` (header, separator, rows), with the heading above it."""
    lines = text.splitlines()
    found: list[Table] = []
    section = subsection = ""
    i = 0
    while i < len(lines):
        if lines[i].startswith("###"):
            subsection = lines[i].strip()
        elif lines[i].startswith("#"):
            section, subsection = lines[i].strip(), ""
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            start = i
            header = _cells(lines[i])
            i += 2
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            found.append(Table(header, tuple(rows), start + 1, section, subsection))
            continue
        i += 1
    return found


def leakage_tables(text: str) -> list[Table]:
    """The tables of ``text`` with a "backed by" column."""
    return [t for t in tables(text) if any(c.lower() == "backed by" for c in t.header)]


def rows_without_a_test(text: str) -> list[str]:
    """Leakage-table rows whose "backed by" cell names no test."""
    found = []
    for table in leakage_tables(text):
        column = [c.lower() for c in table.header].index("backed by")
        for n, row in enumerate(table.rows):
            cell = row[column] if column < len(row) else ""
            if not any(names for _, names in _cell_refs(cell)):
                found.append(f"table at line {table.line}, row {n + 1}: {' | '.join(row)[:80]}")
    return found


def _cell_refs(cell: str) -> list[tuple[str, tuple[str, ...]]]:
    refs = []
    for span in _SPAN.findall(cell):
        full = _FULL.fullmatch(span.strip())
        short = _SHORT.fullmatch(span.strip())
        if full:
            refs.append((full.group(1), _names(full.group(2))))
        elif short:
            refs.append(("", _names(short.group(1))))
    return refs


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_test_the_docs_name_exists(doc: Path) -> None:
    assert problems(doc.read_text(encoding="utf-8"), ROOT) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_leakage_table_row_names_a_test(doc: Path) -> None:
    assert rows_without_a_test(doc.read_text(encoding="utf-8")) == []


def test_every_protocol_section_has_a_leakage_table() -> None:
    text = (ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")
    found = [(t.section, t.subsection) for t in leakage_tables(text)]
    missing = [
        (h2, h3)
        for h2, h3 in LEAKAGE_SECTIONS
        if not any(a.startswith(h2) and b.startswith(h3) for a, b in found)
    ]
    assert missing == []


def test_the_docs_name_tests_at_all() -> None:
    # The checks above pass vacuously on a document with no references.
    text = (ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")
    assert len(references(text)) >= 40


# The parser itself: it must be able to fail.

_SAMPLE = """\
# A protocol

| party | learns | backed by |
|---|---|---|
| guest | a | `tests/test_docs_leakage.py::test_every_test_the_docs_name_exists` |
| host | b | `::test_the_docs_name_tests_at_all`, `…::rows_without_a_test` |
| arbiter | c \\| d | nothing yet |

### Sub

| party | backed by |
|---|---|
| guest | `::test_the_docs_name_tests_at_all` |

Prose: `tests/test_docs_leakage.py::test_no_such_test`, then `…::test_also_missing`,
`::test_every_leakage_table_row_names_a_test[protocols.md]`, `tests/no_such_file.py`,
`tests/test_docs_leakage.py::Ref::__str__`, `tests/test_docs_leakage.py::Ref::missing`,
and `models/tree.py::honest_value_bits` (not a test reference).
"""


def test_the_parser_names_missing_files_and_tests() -> None:
    found = problems(_SAMPLE, ROOT)
    assert found == [
        "line 15: `tests/test_docs_leakage.py::test_no_such_test`: "
        "tests/test_docs_leakage.py defines no test_no_such_test",
        "line 15: `…::test_also_missing`: tests/test_docs_leakage.py defines no test_also_missing",
        "line 16: `tests/no_such_file.py`: no file tests/no_such_file.py",
        "line 17: `tests/test_docs_leakage.py::Ref::missing`: "
        "tests/test_docs_leakage.py::Ref has no missing",
    ]


def test_a_short_reference_needs_a_full_path_before_it() -> None:
    assert problems("see `::test_x`", ROOT) == [
        "line 1: `::test_x` has no full tests/…py path before it"
    ]


def test_the_parser_names_a_leakage_row_without_a_test() -> None:
    found = rows_without_a_test(_SAMPLE)
    assert len(found) == 1
    assert found[0].startswith("table at line 3, row 3: arbiter | c \\| d | nothing yet")
    headings = [(t.section, t.subsection) for t in leakage_tables(_SAMPLE)]
    assert headings == [("# A protocol", ""), ("# A protocol", "### Sub")]
