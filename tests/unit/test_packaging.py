"""The package as pip installs it: every third-party module the library imports is
declared (the core's top-level imports in the core dependencies, the rest in an extra),
every core dependency is used, requires-python agrees with the pins, and the command
answers --help and --version without importing torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import metadata, packages_distributions

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# packages whose top-level imports may come from an extra: the extras they may use
EXTRAS_OF = {"report": {"report"}, "experiments": {"report"}}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_norm(Requirement(r).name) for r in requirements} - {"dscl"}


def _imports():
    """(module path, distribution, at the module's top level) of every third-party import."""
    dists = packages_distributions()
    for path in sorted((REPO / "dscl").rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = set()  # run when the module is imported: its body, and the blocks of an if or try there
        for stmt in tree.body:
            top |= {id(n) for n in ast.walk(stmt)} if isinstance(stmt, ast.If | ast.Try) else {id(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in sys.stdlib_module_names or root == "dscl" or name == "__future__":
                    continue
                assert root in dists, f"{path}: {name} is not installed by any distribution"
                for dist in dists[root]:
                    yield path.relative_to(REPO / "dscl"), _norm(dist), id(node) in top


def test_every_import_of_the_library_is_declared():
    core = _declared(PROJECT["dependencies"])
    extras = {name: _declared(reqs) for name, reqs in PROJECT["optional-dependencies"].items()}
    for path, dist, at_top in _imports():
        allowed = set(core)
        if not at_top or path.parts[0] in EXTRAS_OF:  # imported when used, or a part behind an extra
            for extra in EXTRAS_OF.get(path.parts[0], extras):
                allowed |= extras[extra]
        assert dist in allowed, f"dscl/{path} imports {dist}, which pyproject.toml does not declare there"


def test_every_core_dependency_is_imported():
    used = {dist for _, dist, _ in _imports()}
    assert _declared(PROJECT["dependencies"]) <= used


def test_requires_python_agrees_with_the_pins():
    ours = SpecifierSet(PROJECT["requires-python"])
    lowest = re.search(r">=\s*([\d.]+)", str(ours)).group(1)
    for line in (REPO / "requirements.txt").read_text().splitlines():
        pin = line.split("#")[0].strip()
        if "==" not in pin:
            continue
        needs = metadata(pin.split("==")[0]).get("Requires-Python")
        if needs:
            assert lowest in SpecifierSet(needs), f"{pin} needs Python {needs}; pyproject says {ours}"
    classifiers = [
        c for c in PROJECT["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert all(c.rsplit(" ", 1)[1] in ours for c in classifiers) and classifiers


def test_help_and_version_answer_without_torch():
    code = (
        "import sys, contextlib, io\n"
        "from dscl.inference.command import main\n"
        "for flag in ('--help', '--version'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        main([flag])\n"
        "    print(out.getvalue())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    from dscl import __version__

    assert "usage: dscl" in out and f"dscl {__version__}" in out
    assert out.strip().splitlines()[-1] == "False", "torch imported before the command line was read"
