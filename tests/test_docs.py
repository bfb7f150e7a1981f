"""The front page and the documentation site: the README's length and opening, figures equal to the benchmarks'
stored outputs, every command and option in the CLI reference, no internal history on user pages."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
COMMANDS = ["python -m pip install -e . && dse run", 'python -m pip install -e ".[test]" && python -m pytest']


def _hooks():
    """docs/hooks.py, the MkDocs hooks module (not a package: MkDocs loads it by path)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _user_pages() -> list[Path]:
    """The README and every page of the site (docs/_incoming holds drafts the site leaves out)."""
    return [README] + sorted(p for p in DOCS.rglob("*.md") if "_incoming" not in p.relative_to(DOCS).parts)


def _prose(text: str) -> str:
    """Markdown without its fenced code blocks."""
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


def test_readme_is_a_short_front_page_opening_with_a_line_and_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.split()) <= 1500
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    assert paragraphs[0] == "# adaptive-dse"
    description = " ".join(paragraphs[1].split())
    assert not description.startswith(("#", "```")) and description.endswith(".") and description.count(". ") == 0
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)
    assert [block.strip() for block in blocks[:2]] == COMMANDS
    assert text.index(blocks[1]) < text.index("\n## ")  # the commands come before any section


def test_readme_holds_no_benchmark_figure() -> None:
    """The README is not built by MkDocs, so it quotes no measured figure (they live on the site's pages)."""
    figure = re.compile(r"\d[\d.,]*\s*(%|µJ|mJ|pJ|ms\b|s\b|×|x\b|trials/s|configurations/s|MiB)")
    assert not figure.findall(_prose(README.read_text()))


@pytest.mark.parametrize("page", _user_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_user_pages_hold_no_internal_history(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"\bwave[- ]?\d", text, flags=re.IGNORECASE)
    assert not re.search(r"\bMeasured on\b", text)
    commit = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
    assert not commit.findall(_prose(text)), commit.findall(_prose(text))


def test_readme_links_and_images_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).is_file(), target


def test_readme_own_model_spec_is_a_valid_spec_that_prices(tmp_path: Path) -> None:
    from dse import parse_spec
    from dse.cli import app

    text = re.search(r"<!-- front-page: my-study.toml -->\n```toml\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(text.strip().splitlines()) <= 15
    spec = parse_spec(text, "README.md")
    assert "tiny" in spec.section("little").nets and "tiny" in spec.models
    (tmp_path / "my-study.toml").write_text(text)
    done = CliRunner().invoke(app, ["cost", "tiny", "--spec", str(tmp_path / "my-study.toml")])
    assert done.exit_code == 0, done.output
    assert "conv" in done.output


def test_spec_reference_example_is_a_valid_spec() -> None:
    from dse import parse_spec

    text = re.search(r"```toml\n(.*?)```", (DOCS / "guide" / "specs.md").read_text(), re.S).group(1)
    spec = parse_spec(text, "docs/guide/specs.md")
    assert {"little", "bitwidth", "incremental", "effort", "exits"} <= set(spec.enabled())


def _placeholders() -> list[tuple[Path, str, tuple]]:
    """(page, function, arguments) of every placeholder on the user pages."""
    import ast

    hooks = _hooks()
    found = []
    for page in _user_pages():
        for name, arguments in hooks.PLACEHOLDER.findall(page.read_text()):
            found.append((page, name, ast.literal_eval(f"({arguments},)") if arguments.strip() else ()))
    return found


def _stored(stem: str, key: str):
    """The value at a dotted key of benchmarks/results/STEM.json, read here without the hooks' code."""
    value = json.loads((ROOT / "benchmarks" / "results" / f"{stem}.json").read_text())
    for part in key.split("."):
        value = value[part]
    return value


def test_every_figure_on_the_pages_equals_the_stored_benchmark_output() -> None:
    hooks = _hooks()
    figures = [(page, arguments) for page, name, arguments in _placeholders() if name == "bench"]
    assert figures
    for page, (stem, key, *rest) in figures:
        suffix, digits = (rest + ["", None][len(rest):])[:2]
        assert (ROOT / "benchmarks" / f"{stem.split('.')[0]}.py").is_file(), f"{page}: no benchmark {stem}"
        rendered = hooks.bench(stem, key, suffix, digits)
        if not (ROOT / "benchmarks" / "results" / f"{stem}.json").is_file():
            assert rendered == hooks.NOT_MEASURED
            continue
        value = _stored(stem, key)
        assert rendered.endswith(suffix)
        shown = rendered[:len(rendered) - len(suffix)] if suffix else rendered
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            expected = value if digits is None else round(value, digits)
            assert float(shown.replace(",", "")) == pytest.approx(expected, abs=10 ** -(digits or 12)), (page, key)
        elif isinstance(value, str):
            assert shown == value, (page, key)
        elif isinstance(value, list):
            assert [item.strip() for item in shown.split(",")] == [str(item) for item in value], (page, key)


def test_every_benchmark_has_a_page_and_every_results_file_a_benchmark() -> None:
    tables = {arguments[0] for _, name, arguments in _placeholders() if name == "bench_table"}
    benchmarks = {path.stem for path in (ROOT / "benchmarks").glob("*.py") if not path.stem.startswith("_")}  # _x: helpers
    assert benchmarks <= tables, sorted(benchmarks - tables)
    for path in (ROOT / "benchmarks" / "results").glob("*"):
        assert path.suffix == ".json" and path.stem.split(".")[0] in benchmarks, path
        lines = path.read_text().strip().splitlines()
        assert len(lines) == 1 and isinstance(json.loads(lines[0]), dict), path


def test_bench_placeholders_say_not_yet_measured_or_fail_loudly(tmp_path: Path) -> None:
    hooks = _hooks()
    hooks.RESULTS = tmp_path
    assert hooks.bench("warm_run", "warm_run_seconds", " s") == hooks.NOT_MEASURED
    assert "not yet measured" in hooks.bench_table("warm_run").lower()
    (tmp_path / "warm_run.json").write_text('{"warm_run_seconds": 3.5, "nested": {"n": [1, 2]}}\n')
    assert hooks.bench("warm_run", "warm_run_seconds", " s") == "3.5 s"
    assert hooks.bench("warm_run", "nested.n") == "1, 2"
    assert hooks.render('a {{ bench("warm_run", "warm_run_seconds", " s", 0) }} b') == "a 4 s b"
    assert "| `nested.n` | 1, 2 |" in hooks.bench_table("warm_run")
    with pytest.raises(hooks.DocsError, match="no key 'missing'"):
        hooks.bench("warm_run", "missing")
    with pytest.raises(hooks.DocsError, match="no benchmark"):
        hooks.bench("no_such_benchmark", "x")
    (tmp_path / "warm_run.json").write_text('{"a": 1}\n{"a": 2}\n')
    with pytest.raises(hooks.DocsError, match="one line"):
        hooks.bench("warm_run", "a")


def test_cli_reference_lists_every_command_argument_and_option() -> None:
    import typer.main

    from dse.cli import app

    reference = _hooks().cli_reference()

    def walk(command, path: list[str]) -> int:
        assert f"`{' '.join(path)}`" in reference, path
        section = reference.split(f"`{' '.join(path)}`\n", 1)[1]
        for param in (p for p in command.params if not p.hidden):
            names = param.opts + param.secondary_opts if param.param_type_name == "option" else [param.name.upper()]
            for name in names:
                assert name in section.split("\n#", 1)[0], (path, name)
        subcommands = getattr(command, "commands", {}).items()
        return 1 + sum(walk(sub, [*path, name]) for name, sub in subcommands if not sub.hidden)

    assert walk(typer.main.get_command(app), ["dse"]) >= 10


def test_worked_example_and_screenshot_are_where_the_pages_say() -> None:
    guide = (DOCS / "guide" / "bring-your-own.md").read_text()
    assert {"export.py", "digits.toml", "commands"} <= set(re.findall(r"<!-- example: (\S+) -->", guide))
    image = DOCS / "images" / "quickstart-report.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
