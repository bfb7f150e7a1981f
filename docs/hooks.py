"""MkDocs hooks: benchmark figures read from `benchmarks/results/`, and the CLI reference generated from the `dse` app.

Pages hold placeholders that are replaced when the site is built, so no figure and no option list is typed by hand:
- `bench("STEM", "KEY", "SUFFIX", DIGITS)`: one value of `benchmarks/results/STEM.json` (the last JSON line that
  `benchmarks/STEM.py` printed; a dotted KEY reaches into nested objects; SUFFIX, optional, is appended, e.g. " %";
  DIGITS, optional, rounds a number to that many decimals for display);
- `bench_table("STEM")`: every value of that file, as a table;
- `cli_reference()`: every command of `dse`, its usage, arguments and options, read from the typer app;
- `builtin_studies()`: the built-in study specs, each with its description and dataset;
- `network_costs("NET,NET,...", "SRAM")`: the cost model's price of shipped networks, computed at build time.
Each is written between double braces. A missing results file renders "not yet measured"; a key that the file
lacks, or a benchmark that does not exist, is an error (the build fails).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
NOT_MEASURED = "*not yet measured*"
PLACEHOLDER = re.compile(r"\{\{\s*(bench|bench_table|cli_reference|builtin_studies|network_costs)\((.*?)\)\s*\}\}")


class DocsError(Exception):
    """A placeholder that names a benchmark, key or function that does not exist."""


def benchmark_of(stem: str) -> str:
    """The benchmark a results file belongs to: `early_exit.onnx` is a run of `benchmarks/early_exit.py`."""
    return stem.split(".")[0]


def load_result(stem: str) -> dict[str, Any] | None:
    """The stored JSON output of `benchmarks/STEM.py` (`STEM.VARIANT`: one of its stored runs with other options),
    or None when it has not been measured yet."""
    if not (BENCHMARKS / f"{benchmark_of(stem)}.py").is_file():
        raise DocsError(f"no benchmark benchmarks/{benchmark_of(stem)}.py")
    path = RESULTS / f"{stem}.json"
    if not path.is_file():
        return None
    lines = path.read_text().strip().splitlines()
    result = json.loads(lines[-1]) if len(lines) == 1 else None
    if not isinstance(result, dict):
        raise DocsError(f"benchmarks/results/{stem}.json must hold one line, one JSON object (the benchmark's last line)")
    return result


def lookup(result: dict[str, Any], stem: str, key: str) -> Any:
    """The value at a dotted KEY of a result; a missing key is an error naming the file."""
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DocsError(f"benchmarks/results/{stem}.json has no key {key!r}")
        value = value[part]
    return value


def format_value(value: Any, digits: int | None = None) -> str:
    """A JSON value as it reads in a sentence or a table cell: numbers as stored (or rounded to `digits` decimals),
    lists joined by commas."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(format_value(item, digits) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key} {format_value(item, digits)}" for key, item in value.items())
    if digits is not None and isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def bench(stem: str, key: str, suffix: str = "", digits: int | None = None) -> str:
    """One stored figure of a benchmark, or "not yet measured" when its results file is absent."""
    result = load_result(stem)
    if result is None:
        return NOT_MEASURED
    return format_value(lookup(result, stem, key), digits) + suffix


def _flatten(result: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a result, in the file's order."""
    rows: list[tuple[str, Any]] = []
    for key, value in result.items():
        if isinstance(value, dict) and value:
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def bench_table(stem: str) -> str:
    """Every stored figure of a benchmark as a table, with the command that produces it."""
    result = load_result(stem)
    command = f"`python benchmarks/{benchmark_of(stem)}.py`"
    if result is None:
        return (f"{NOT_MEASURED.capitalize()}: run {command} and save its last line as "
                f"`benchmarks/results/{stem}.json`.")
    rows = "\n".join(f"| `{key}` | {_cell(format_value(value))} |" for key, value in _flatten(result))
    return f"Stored output of {command} (`benchmarks/results/{stem}.json`):\n\n| key | value |\n|---|---|\n{rows}\n"


def _cell(text: str) -> str:
    """Text made safe for a markdown table cell (no pipes, no raw HTML, no emphasis)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("*", "\\*").replace("\n", " "))


def cli_reference() -> str:
    """Markdown for every command of the `dse` app: what it does, its usage, arguments and options."""
    import typer.main

    from dse.cli import app

    root = typer.main.get_command(app)
    sections: list[str] = []

    def walk(command: Any, path: list[str], parent: Any) -> None:
        context = command.context_class(command, info_name=path[-1], parent=parent)
        usage = " ".join([*path, *command.collect_usage_pieces(context)])
        params = [p for p in command.params if not p.hidden]
        lines = [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", "", _help_text(command.help), "",
                 f"```\n{usage}\n```", ""]
        if params:
            lines += ["| argument or option | what it does |", "|---|---|"]
            lines += [f"| `{name}` | {_cell(text)} |" for name, text in (_param_row(p, context) for p in params)]
            lines.append("")
        sections.append("\n".join(lines))
        for name in getattr(command, "list_commands", lambda _: [])(context):
            subcommand = command.get_command(context, name)
            if not subcommand.hidden:
                walk(subcommand, [*path, name], context)

    walk(root, ["dse"], None)
    return "\n".join(sections)


def _help_text(text: str | None) -> str:
    """A command's help as markdown: paragraphs kept, raw HTML escaped."""
    return (text or "").strip().replace("<", "&lt;").replace(">", "&gt;")


def _param_row(param: Any, context: Any) -> tuple[str, str]:
    """(name with its type, help with default and range) of one argument or option, as `--help` shows them."""
    if param.param_type_name == "option":
        record = param.get_help_record(context)
        if record is not None:
            return record[0], record[1]
    kind = param.display_type(context).strip("<>") if hasattr(param, "display_type") else param.type.name
    name = f"{param.name.upper()} ({kind})"
    help_text = getattr(param, "help", None) or ""
    extra = "required" if param.required else (f"default: {param.default}" if param.default is not None else "")
    return name, f"{help_text}  [{extra}]" if extra else help_text


def builtin_studies() -> str:
    """A table of the built-in study specs (`dse run NAME`), read from the specs shipped in `studies/`."""
    import tomllib

    from dse import builtin_specs

    rows = []
    for name, path in sorted(builtin_specs().items()):
        spec = tomllib.loads(path.read_text())
        rows.append(f"| `{name}` | {_cell(spec.get('description', ''))} | `{spec.get('data', {}).get('dataset', '')}` |")
    return "| study | what it runs | dataset |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def network_costs(names: str, sram: str = "16KiB") -> str:
    """A table of shipped networks priced by the cost model (16-bit, every layer) under both mappings."""
    import nets
    from costmodel import Accelerator, network_cost, parse_bytes

    rows = []
    for name in names.split(","):
        layers = nets.architecture(name).layer_shapes(1.0)
        auto, diannao = (network_cost(layers, Accelerator(sram_bytes=parse_bytes(sram), dataflow=dataflow))
                         for dataflow in ("auto", "diannao"))
        rows.append(f"| `{name}` | {auto.macs / 1e6:,.2f} | {auto.weight_bytes / 2**10:,.1f} | "
                    f"{auto.energy_pj / 1e6:,.1f} | {diannao.energy_pj / 1e6:,.1f} | {auto.dram_pj / auto.energy_pj:.0%} |")
    return ("| network | MACs (millions) | weights (KiB) | energy, `auto` (µJ) | energy, `diannao` (µJ) | "
            "DRAM share, `auto` |\n|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def render(markdown: str) -> str:
    """A page's markdown with every placeholder replaced."""
    functions = {"bench": bench, "bench_table": bench_table, "cli_reference": cli_reference,
                 "builtin_studies": builtin_studies, "network_costs": network_costs}

    def replace(match: re.Match[str]) -> str:
        arguments = ast.literal_eval(f"({match.group(2)},)") if match.group(2).strip() else ()
        return functions[match.group(1)](*arguments)

    return PLACEHOLDER.sub(replace, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: fill in the placeholders of every page."""
    return render(markdown)
