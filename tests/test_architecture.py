"""The layout's rules, checked on the source: no import cycles; no mechanism named in the core; public benchmarks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dse

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("costmodel", "nets", "dse", "reports", "studies")
# The core: spec loader, space, problem, evaluation, study, storage, results, CLI root and the report shell.
CORE = [*sorted((ROOT / "dse" / "core").glob("*.py")), ROOT / "dse" / "cli" / "__init__.py",
        ROOT / "dse" / "cli" / "study.py", *sorted((ROOT / "reports").glob("*.py"))]
PAPERS = ("park", "tann", "jahier", "dyvedeep", "big/little")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST):  # type: ignore[no-untyped-def]
    """Every node of `tree` except those under `if TYPE_CHECKING:` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    """Every project module -> the project modules it imports at run time (at any level of the file, lazily too)."""
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


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
    import nets._quant  # noqa: F401  (torch-side errors)
    import nets._transfer
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
             nets._quant.QuantizationError, dse.SpecError, dse.StudyNotFound, dse.core.output.MissingExtra,
             jahier2018.BitwidthError, park2015.ThresholdError, tann2016.IncrementSearchError, RiskError, StorageError,
             OutputPathError, WorkerFailed, nets._transfer.CacheTransferError]
    roots += [dse.core.study.ChangedSpec, OptionConflict]
    assert all(issubclass(cls, dse.UserError) for cls in roots)
    exceptions = {node.name for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)
                  and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception", "NotFound", "Architecture"))
                          for b in node.bases)}
    internal = {"CacheCorrupted"}  # caught where it is raised: a corrupt cache file is rebuilt, never shown
    assert exceptions - internal == {cls.__name__ for cls in roots} | {"UserError", "TilingError"}
