"""Every command in README.md and docs/*.md runs as written.

The commands are the lines of the fenced ``sh``/``bash``/``shell``/``console`` blocks, and the
inline code spans that start with ``python -m`` or ``make``. For ``python -m MODULE [SUB ...]
--flags`` the test runs ``python -m MODULE [SUB ...] --help`` in a subprocess: it must exit 0 and
name every flag the command uses. ``make TARGET`` must be a target of the Makefile; with
``ARGS=...`` the flags must be those of the command the target passes ``$(ARGS)`` to. Any other
program must be in ``SKIPPED``, with the reason.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```(sh|bash|shell|console)[ \t]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`((?:python -m|make) [^`]+)`(?!`)")
# Inline spans may be in a usage notation: [--flag], a|b, ...
NOTATION = re.compile(r"[\[\]]")

SKIPPED = {
    ".": "sources the venv's activate script",
    "spark-submit": "written with '...' for its options: it is the line that "
                    "`python -m spark_batch replay --print-command` prints, which is checked",
    "curl": "needs a running pipeline",
}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")  # SPEC, PATH: a value the reader picks
PYTHON = {"python", "python3", ".venv/bin/python"}


def _tokens(line: str) -> list[str]:
    """A command's arguments; of alternatives (``up | down``, ``co2|FILE.toml``) the first."""
    tokens = shlex.split(NOTATION.sub(" ", line), comments=True)
    if "|" in tokens:
        tokens = tokens[:tokens.index("|")]
    return [t.split("|")[0] for t in tokens if t != "..."]


def commands(text: str) -> Iterator[list[str]]:
    """The commands of one Markdown text, as argument lists."""
    for block in FENCE.finditer(text):
        console = block.group(1) == "console"
        for line in block.group(2).replace("\\\n", " ").splitlines():
            line = line.strip()
            if console:
                if not line.startswith("$ "):
                    continue  # output, not a command
                line = line[2:]
            if tokens := _tokens(line):
                yield tokens
    for span in INLINE.finditer(text):
        yield _tokens(span.group(1))


def _documented() -> list[tuple[str, list[str]]]:
    return [(doc.relative_to(REPO).as_posix(), tokens) for doc in DOCS
            for tokens in commands(doc.read_text(encoding="utf-8"))]


@functools.cache
def help_text(module: str, subcommands: tuple[str, ...]) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", module, *subcommands, "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    return proc.returncode, proc.stdout + proc.stderr


@functools.cache
def make_recipes() -> dict[str, list[str]]:
    """Each Makefile target with its recipe lines."""
    recipes: dict[str, list[str]] = {}
    target = None
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith("\t") and target is not None:
            recipes[target].append(line.strip())
        elif match := re.match(r"^([A-Za-z][\w-]*)\s*:(?!=)", line):
            target = match.group(1)
            recipes[target] = []
        elif line.strip() and not line.startswith("#"):
            target = None
    return recipes


def check_python(args: list[str]) -> list[str]:
    if len(args) < 2 or args[0] != "-m":
        return [f"not of the form `python -m MODULE`: {args}"]
    module, rest = args[1], args[2:]
    subcommands: list[str] = []
    for token in rest:
        if token.startswith("-") or PLACEHOLDER.match(token):
            break
        subcommands.append(token)
    # A parser may print its help before it looks at a word it does not know: each word must
    # be named by the help of the words before it.
    for i, word in enumerate(subcommands):
        code, text = help_text(module, tuple(subcommands[:i]))
        if code == 0 and not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text):
            return [f"`{' '.join(['python -m', module, *subcommands[:i], '--help'])}` does not name {word!r}"]
    code, text = help_text(module, tuple(subcommands))
    shown = " ".join(["python -m", module, *subcommands, "--help"])
    if code != 0:
        return [f"`{shown}` exited with {code}: {text[-500:]}"]
    flags = {t.split("=", 1)[0] for t in rest if t.startswith("--") and t != "--"}
    return [f"`{shown}` does not know {flag}" for flag in sorted(flags)
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]


def check_make(args: list[str]) -> list[str]:
    recipes = make_recipes()
    targets = [a for a in args if "=" not in a and not a.startswith("-")]
    problems = [f"the Makefile has no target {t!r}" for t in targets if t not in recipes]
    extra = next((a.split("=", 1)[1] for a in args if a.startswith("ARGS=")), "")
    if problems or not extra:
        return problems
    for target in targets:
        passing = [line for line in recipes[target] if "$(ARGS)" in line]
        if not passing:
            problems.append(f"make {target} does not pass ARGS on")
        for line in passing:
            recipe = shlex.split(line.replace("$(PY)", "python").replace("$(ARGS)", ""))
            problems += check_python([*recipe[1:], *shlex.split(extra)])
    return problems


def check(tokens: list[str]) -> list[str]:
    """What is wrong with one documented command (nothing: it runs as written)."""
    program = tokens[0]
    if program in PYTHON:
        return check_python(tokens[1:])
    if program == "make":
        return check_make(tokens[1:])
    if program in SKIPPED:
        return []
    return [f"{program}: not a command this test knows; check it or add it to SKIPPED with the reason"]


DOCUMENTED = _documented()


def test_the_docs_have_commands_to_check() -> None:
    programs = {tokens[0] for _doc, tokens in DOCUMENTED}
    assert {"make", "python"} <= programs, programs
    assert len(DOCUMENTED) > 30


@pytest.mark.parametrize(("doc", "tokens"), DOCUMENTED,
                         ids=[f"{d}:{shlex.join(t)[:60]}" for d, t in DOCUMENTED])
def test_a_documented_command_runs_as_written(doc: str, tokens: list[str]) -> None:
    assert check(tokens) == [], f"{doc}: {shlex.join(tokens)}"


@pytest.mark.parametrize(("line", "problem"), [
    ("python -m processor --model-verison v2", "does not know --model-verison"),
    ("python -m processor promte linear", "does not name 'promte'"),
    ("python -m infra spark upp", "does not name 'upp'"),
    ("python -m no_such_module", "exited with 1"),
    ("make run ARGS='--rates 0'", "does not know --rates"),
    ("make deploy", "no target 'deploy'"),
    ("docker compose up", "not a command this test knows"),
])
def test_the_check_finds_a_wrong_command(line: str, problem: str) -> None:
    assert any(problem in p for p in check(_tokens(line))), check(_tokens(line))


def test_console_blocks_check_only_the_prompted_lines() -> None:
    text = "```console\n$ make test\nok\n```\n\n```bash\nmake run  # start\n```\n"
    assert list(commands(text)) == [["make", "test"], ["make", "run"]]
