"""The shape of the code: thin stages that import the configuration and the library,
never each other, and start without torch where they never touch a tensor."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

NOT_STAGES = ("__init__", "cli", "calls", "launch", "lifetime")
STAGES = sorted(p for p in (REPO / "stages").glob("*.py") if p.stem not in NOT_STAGES)


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.stem)
def test_a_stage_is_thin_and_imports_no_other_stage(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {
        f"{node.module}.{alias.name}" if node.module == "stages" else node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert {m for m in imported if m.startswith("stages")} <= {"stages.cli", "stages.calls"}, imported
    assert len(path.read_text().splitlines()) <= 120


@pytest.mark.parametrize("module", ["stages.prepare", "stages.curves", "dscl.config"])
def test_stages_that_touch_no_tensor_start_without_torch(module):
    code = (
        f"import sys, {module}; print(sorted(m for m in ('torch', 'sklearn', 'faiss') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Modules that change no stage's numbers: the schema and its validation (its values are the stages' params),
# lookup tables, file and device plumbing, and the dataset readers (a stage that reads a
# prepared dataset depends on the prepared data itself), and the packages whose __init__
# only documents or re-exports.
BOOKKEEPING = {
    "dscl/__init__.py",
    "dscl/report/__init__.py",
    "dscl/training/__init__.py",
    "dscl/evaluation/__init__.py",
    "dscl/inference/__init__.py",
    "dscl/experiments/__init__.py",
    "dscl/config.py",
    "dscl/schema.py",
    "dscl/registry.py",
    "dscl/choices.py",
    "dscl/atomic.py",
    "dscl/device.py",
    "dscl/_arrays.py",
    "dscl/_lazy.py",
    "stages/__init__.py",
    "stages/cli.py",
    "stages/lifetime.py",
}


def _module_file(name: str):
    for candidate in (REPO / (name.replace(".", "/") + ".py"), REPO / name.replace(".", "/") / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path) -> set[str]:
    """The project modules a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {
                f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")
            }
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.split(".")[0] in ("dscl", "stages")}


def _code_closure(module: str) -> set[str]:
    """Every project file that ``module`` runs: its imports, their imports, and the
    packages above them. The imports of the schema and of the registries of names are not
    followed: they look names up (a stage that calls an objective imports it itself)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        path = _module_file(name)
        if path is not None and name not in ("dscl.config", "dscl.registry", "dscl.methods"):
            todo += _imported_modules(path)
    return {str(_module_file(m).relative_to(REPO)) for m in seen if _module_file(m)}


def test_every_stage_depends_on_the_code_that_computes_its_outputs():
    """A module that changes a stage's numbers is among the stage's DVC deps, so that an
    edit to it (a new objective's file, say) re-runs the stage instead of leaving a stale
    result in dvc.lock."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        deps = [d.rstrip("/") for d in body["deps"]]
        code = _code_closure(f"stages.{name}") | (
            _code_closure("stages.launch") if name == "train" else set()
        )
        missing = sorted(
            f
            for f in code - BOOKKEEPING
            if not f.startswith("dscl/datasets/") and not any(f == d or f.startswith(d + "/") for d in deps)
        )
        assert not missing, f"dvc.yaml: stage {name} runs {missing} but does not depend on it"


def test_the_ablation_depends_on_every_last_layer_methods_entry():
    """The ablation may list any last-layer method: each one's entry is among its params
    (not the whole train section, which made its dvc.lock entry 30 KB)."""
    import yaml

    from dscl.methods import METHODS

    params = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["ablation"]["do"]["params"]
    listed = {p.split(".")[1] for p in params if p.startswith("train.") and p.endswith(".${item}")}
    assert listed - {"datasets"} == {n for n, m in METHODS.items() if m.learns == "last_layer"}


def test_no_stage_depends_on_code_it_does_not_run():
    """The other direction: every code dependency of a stage is in its import closure, so
    an edit elsewhere re-runs nothing (a library file a stage no longer imports is
    dropped from its deps)."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        code = _code_closure(f"stages.{name}") | (
            _code_closure("stages.launch") if name == "train" else set()
        )
        deps = [d.rstrip("/") for d in body["deps"] if d.startswith(("dscl", "stages"))]
        extra = [d for d in deps if not any(f == d or f.startswith(d + "/") for f in code)]
        assert not extra, f"dvc.yaml: stage {name} depends on {extra}, which it does not import"


def test_every_module_is_on_an_api_page():
    """The API reference follows the packages: every public module of the library is
    rendered on a page of docs/api/ (a private module, ``_name``, is not)."""
    shown = set()
    for page in (REPO / "docs" / "api").glob("*.md"):
        shown |= {line[4:].strip() for line in page.read_text().splitlines() if line.startswith("::: ")}
    modules = set()
    for f in (REPO / "dscl").rglob("*.py"):
        parts = f.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(p.startswith("_") for p in parts):
            modules.add(".".join(parts))
    assert modules - {"dscl"} <= shown, (
        f"modules on no page of docs/api/: {sorted(modules - {'dscl'} - shown)}"
    )


def test_library_functions_are_short_and_take_few_positional_arguments():
    """No function of the library runs over 60 lines of code (its docstring aside) or
    takes more than 8 arguments that are not keyword-only: a longer one is split, a
    wider one takes an options object or keyword-only settings."""
    too_long, too_wide = [], []
    for path in sorted((REPO / "dscl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body, doc = node.body, 0
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                doc = body[0].end_lineno - body[0].lineno + 1
            where = f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
            if node.end_lineno - node.lineno + 1 - doc > 60:
                too_long.append(where)
            positional = [
                a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")
            ]
            if len(positional) > 8:
                too_wide.append(where)
    assert not too_long, f"functions over 60 lines of code: {too_long}"
    assert not too_wide, f"functions with more than 8 positional arguments: {too_wide}"


def test_the_configuration_composes_the_librarys_options_and_imports_no_torch():
    """The schema sits at the edge: it nests the option classes each package defines
    (``dscl.training.options``, ``dscl.report.options``, ``dscl.backbones.specs``) and
    imports nothing else of the training code, and no torch (the check stage runs in
    half a second)."""
    imported = _imported_modules(REPO / "dscl" / "config.py")
    assert [m for m in imported if m.startswith("dscl.training")] == ["dscl.training.options"]
    out = subprocess.run(
        [sys.executable, "-c", "import sys, dscl.config; print('torch' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "False"


def test_the_unit_tests_mirror_the_packages():
    """Each package of the library has its folder of unit tests (tests/unit/<package>/);
    the shared modules at the top of ``dscl/`` are tested at the top of tests/unit/."""
    packages = {p.parent.name for p in (REPO / "dscl").glob("*/__init__.py")}
    folders = {p.parent.name for p in (REPO / "tests" / "unit").glob("*/__init__.py")}
    assert packages <= folders, f"packages without a tests/unit folder: {sorted(packages - folders)}"
    assert folders <= packages, f"tests/unit folders of no package: {sorted(folders - packages)}"


def test_the_library_logs_and_never_prints():
    """Messages go through logging (the stages and `dscl` set it up; -q and -v reach them);
    a result the command prints is written to stdout by its own function."""
    printing = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in sorted((REPO / "dscl").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert not printing, printing


def test_no_test_time_module_is_a_dependency_of_training_or_embedding():
    """The cache follows meaning: a change of a test metric, of the intervals or of the
    report (dscl/evaluation, dscl/report) re-runs evaluations and reports, never a training
    or an embedding (scripts/touch_modules.py measures it with dvc status, in CI)."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("train", "embed", "features", "prepare"):
        deps = [d.rstrip("/") for d in stages[name].get("do", stages[name])["deps"]]
        for package in ("dscl/evaluation", "dscl/report"):
            crossing = [
                d for d in deps if d == package or d.startswith(package + "/") or package.startswith(d + "/")
            ]
            assert not crossing, f"{name} depends on {crossing}: a change of {package} would re-run it"
        assert "dscl" not in deps


def _import_graph(depth: int | None) -> dict[str, set[str]]:
    """Which library modules (``depth`` None) or packages (``dscl.<package>``: depth 2)
    import which, counting imports inside functions."""
    graph: dict[str, set[str]] = {}
    for path in (REPO / "dscl").rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for other in _imported_modules(path):
            if other.startswith("dscl"):
                a, b = (
                    (name, other)
                    if depth is None
                    else (".".join(name.split(".")[:depth]), ".".join(other.split(".")[:depth]))
                )
                if a != b:
                    graph.setdefault(a, set()).add(b)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("depth", [None, 2], ids=["modules", "packages"])
def test_no_import_cycle_counting_imports_inside_functions(depth):
    """No module, and no package of the library, imports one that imports it back, even
    through an import inside a function (which hides a cycle from Python)."""
    assert _cycles(_import_graph(depth)) == []


def test_every_error_of_the_library_is_a_dscl_error():
    """One base for the library's errors (caught in one place by the stages and ``dscl``)."""
    import importlib
    import inspect

    from dscl.errors import DSCLError

    found = {}
    for path in (REPO / "dscl").rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    assert len(found) >= 10
    assert [n for n, c in found.items() if not issubclass(c, DSCLError)] == []


def test_the_configuration_is_read_at_the_edge():
    """Only the stages read params.yaml: no library module imports ``dscl.config`` (the
    library takes its own option objects and plain arguments)."""
    readers = sorted(
        path.relative_to(REPO).as_posix()
        for path in (REPO / "dscl").rglob("*.py")
        if (path.name != "config.py" and any(m == "dscl.config" for m in _imported_modules(path)))
        or (path.name != "config.py" and "from dscl import config" in path.read_text())
    )
    assert readers == []
