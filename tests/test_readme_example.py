"""The worked example of the guide runs as written: its files and commands are read from
docs/guide/bring-your-own.md, not copied here."""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PAGE = ROOT / "docs" / "guide" / "bring-your-own.md"


def readme_examples() -> dict[str, str]:
    """Every fenced block after an `<!-- example: NAME -->` marker in the guide's worked example, by NAME."""
    text = EXAMPLE_PAGE.read_text()
    return dict(re.findall(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```", text, flags=re.DOTALL))


def test_the_readme_worked_example_runs_as_written(tmp_path: Path) -> None:
    examples = readme_examples()
    assert set(examples) == {"export.py", "digits.toml", "commands"}
    for name in ("export.py", "digits.toml"):
        (tmp_path / name).write_text(examples[name])
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "DSE_CACHE_DIR": str(tmp_path / "cache")}
    outputs = []
    for line in examples["commands"].strip().splitlines():
        command = shlex.split(line)
        if command[0] == "dse" and not (bin_dir / "dse").exists():
            command = [sys.executable, "-m", "dse.cli", *command[1:]]  # the console script's module, same arguments
        elif command[0] == "python":
            command[0] = sys.executable
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert re.search(r"0 -> [1-9]\d* completed trials?;", outputs[1]) and (tmp_path / "dse-out" / "digits" / "report.html").is_file()
    with open(tmp_path / "dse-out" / "digits" / "trials.csv") as handle:  # the 3-model chain ran, cheapest first
        chains = {row["cascade"]: row for row in csv.DictReader(handle)}
    assert "little > mid > big" in chains and chains["little > mid > big"]["test_reach_stage2"] != ""
    assert "Best point per cascade length" in (tmp_path / "dse-out" / "digits" / "report.html").read_text()
    assert re.search(r"MACs 11776\b", outputs[2])  # conv 16x1x3x3 on 8x8 (9,216) + fc 256x10 (2,560)
