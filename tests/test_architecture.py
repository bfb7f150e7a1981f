"""The layout's rules, checked on the source: layers that import only downwards, no import cycles (type-only imports
counted), `reports` reading only `dse`'s public API, no mechanism named in the core, public benchmarks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dse

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("costmodel", "nets", "dse", "reports", "studies")
# The layers, top first (docs/reference/architecture.md): a module imports its own layer and the layers below, never
# one above. The CLI is `dse.cli` and each mechanism's `<mechanism package>.cli`; `studies` holds the built-in specs
# that the spec loader reads.
LAYERS = ("cli", "reports", "dse", "nets", "costmodel")
# The core: spec loader, space, problem, evaluation, study, storage, results, CLI root and the report shell.
CORE = [*sorted((ROOT / "dse" / "core").glob("*.py")), ROOT / "dse" / "cli" / "__init__.py",
        ROOT / "dse" / "cli" / "study.py", *sorted((ROOT / "reports").glob("*.py"))]
PAPERS = ("park", "tann", "jahier", "dyvedeep", "big/little")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str) -> set[str]:
    """Every module name `path` imports, at any level of the file: lazily and under `if TYPE_CHECKING:` too."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names}
    return targets


def import_graph() -> dict[str, set[str]]:
    """Every project module -> the project modules it imports (type-only imports included)."""
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {t for t in imports(path, package) if t in files and t != name}
    return graph


def layer(module: str) -> str:
    """The layer a project module belongs to (see LAYERS)."""
    parts = module.split(".")
    if parts[:2] == ["dse", "cli"] or (parts[:2] == ["dse", "mechanisms"] and parts[-1] == "cli"):
        return "cli"
    return "dse" if parts[0] == "studies" else parts[0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module in a higher layer than the importer's, as 'importer (layer) -> imported (layer)'."""
    rank = {name: index for index, name in enumerate(LAYERS)}
    return [f"{source} ({layer(source)}) -> {target} ({layer(target)})" for source in sorted(graph)
            for target in sorted(graph[source]) if rank[layer(target)] < rank[layer(source)]]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_only_imports_count() -> None:
    models = ROOT / "nets" / "models" / "_models.py"
    assert "if TYPE_CHECKING:" in models.read_text() and "nets.models._onnx" in import_graph()["nets.models._models"]


def test_every_module_has_a_layer() -> None:
    assert {layer(name) for name in import_graph()} == set(LAYERS)


def test_layers_import_only_downwards() -> None:
    upward = upward_imports(import_graph())
    assert not upward, "\n".join(upward)


def test_layer_rule_finds_an_upward_import() -> None:
    graph = {"reports._x": {"dse.cli.study", "dse"}, "dse.mechanisms.m": {"dse.mechanisms.m.cli"},
             "dse.mechanisms.m.cli": {"dse.cli", "dse.mechanisms.m"}, "nets._y": {"costmodel"}, "dse.cli": set(),
             "dse.cli.study": set(), "dse": set(), "costmodel": set()}
    assert upward_imports(graph) == ["dse.mechanisms.m (dse) -> dse.mechanisms.m.cli (cli)",
                                     "reports._x (reports) -> dse.cli.study (cli)"]


def test_reports_read_only_the_public_api_of_dse() -> None:
    """`reports` imports `dse` itself (names in `dse.__all__`), never a module inside it."""
    found = []
    for path in sorted((ROOT / "reports").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("dse.")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dse":
                found += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                          if node.module != "dse" or a.name not in dse.__all__]
    assert not found, "\n".join(found)


def test_core_names_no_mechanism() -> None:
    names = [re.escape(n) for n in dse.registry()] + [re.escape(p) for p in PAPERS] + ["bit-?width", "effort"]
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b", re.IGNORECASE)
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in CORE
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


def test_benchmarks_import_only_public_modules() -> None:
    private = [f"{path.name}: {line.strip()}" for path in sorted((ROOT / "benchmarks").glob("*.py"))
               for line in path.read_text().splitlines()
               if re.match(r"\s*(from|import)\s+(costmodel|nets|dse|reports)(\.\w+)*\._", line)]
    assert not private, "\n".join(private)


def test_one_error_root() -> None:
    """Every exception class meant for the user derives from dse.UserError (the CLI catches only that)."""
    import costmodel
    import nets
    import nets.training._quant  # noqa: F401  (torch-side errors)
    import nets.scores._transfer
    from dse.cli.options import OptionConflict
    from dse.cli.worker import WorkerFailed
    from dse.core._risk import RiskError
    from dse.core.output import OutputPathError
    from dse.core.storage import StorageError
    from dse.mechanisms.big_little import park2015
    from dse.mechanisms.bitwidth import jahier2018
    from dse.mechanisms.incremental import tann2016

    roots = [costmodel.CostModelError, nets.DatasetError, nets.ArchitectureError, nets.UnknownArchitecture,
             nets.EffortError, nets.IncrementalError, nets.ImportedModelError, nets.ExitError, nets.CriterionError,
             nets.training._quant.QuantizationError, dse.SpecError, dse.StudyNotFound, dse.core.output.MissingExtra,
             jahier2018.BitwidthError, park2015.ThresholdError, tann2016.IncrementSearchError, RiskError, StorageError,
             OutputPathError, WorkerFailed, nets.scores._transfer.CacheTransferError]
    roots += [dse.core.fingerprint.ChangedSpec, dse.core.optuna_adapter.OptunaVersionError, OptionConflict]
    assert all(issubclass(cls, dse.UserError) for cls in roots)
    exceptions = {node.name for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)
                  and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception", "NotFound", "Architecture"))
                          for b in node.bases)}
    internal = {"CacheCorrupted"}  # caught where it is raised: a corrupt cache file is rebuilt, never shown
    assert exceptions - internal == {cls.__name__ for cls in roots} | {"UserError", "TilingError"}


def test_the_cli_finds_each_mechanism_commands_beside_it() -> None:
    """A mechanism's commands are `COMMANDS` of `<its package>.cli`: found for each one that has such a module."""
    from dse.cli import app, mechanism_commands

    registered = {command.name for command in app.registered_commands}
    for mechanism in dse.registry().values():
        module = type(mechanism).__module__
        names = {name for name, _ in mechanism_commands(mechanism)}
        assert bool(names) == ROOT.joinpath(*module.split("."), "cli.py").is_file(), module
        assert names <= registered, module


def test_functions_stay_short_and_the_problem_split() -> None:
    """No function in dse/ over 60 lines; the problem's modules (table, pricer, evaluator, facade, loading) each
    under 300 lines: a core that stays small as mechanisms grow."""
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted((ROOT / "dse").rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, "\n".join(long)
    sizes = {name: len((ROOT / "dse" / "core" / f"{name}.py").read_text().splitlines())
             for name in ("problem", "table", "pricer", "evaluator", "loading", "checks")}
    assert max(sizes.values()) < 300, sizes
