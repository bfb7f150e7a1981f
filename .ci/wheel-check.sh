#!/usr/bin/env bash
# CI: build the sdist and the wheel, install the wheel (not editable) into a fresh virtual environment and run the
# installed `dse` from a directory outside the source tree, so that only what the wheel holds can be imported.
# Exits non-zero on the first failure. Usage: .ci/wheel-check.sh [WORKDIR]   (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
work=${1:-$(mktemp -d)}
mkdir -p "$work"
echo "wheel check in $work"

python -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/adaptive_dse-*.whl)
sdist=$(ls "$work"/dist/adaptive_dse-*.tar.gz)
echo "built $(basename "$wheel") and $(basename "$sdist")"

# The one version number: the wheel's file name must carry pyproject's version.
version=$(python -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
case "$(basename "$wheel")" in
  "adaptive_dse-$version-"*) ;;
  *) echo "wheel $(basename "$wheel") does not carry pyproject's version $version"; exit 1 ;;
esac

python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" >"$work/install.log" 2>&1 || { tail -n 40 "$work/install.log"; exit 1; }

run_dir="$work/outside"
mkdir -p "$run_dir"
cd "$run_dir"
# Nothing from the source tree may leak in: no PYTHONPATH, and the package must come from the venv.
unset PYTHONPATH
dse="$work/venv/bin/dse"
location=$("$work/venv/bin/python" -c "import dse, os; print(os.path.dirname(dse.__file__))")
case "$location" in
  "$source_dir"*) echo "dse was imported from the source tree ($location), not the wheel"; exit 1 ;;
esac

got=$("$dse" --version)
[ "$got" = "adaptive-dse $version" ] || { echo "dse --version printed '$got', expected 'adaptive-dse $version'"; exit 1; }
echo "$got"
"$dse" cost LeNet >"$work/cost.txt"
grep -q "^total " "$work/cost.txt" || { cat "$work/cost.txt"; echo "dse cost LeNet printed no total"; exit 1; }
# The quickstart, training its variants on the embedded data, in a cache of its own.
DSE_CACHE_DIR="$work/cache" "$dse" run --no-progress >"$work/run.txt" 2>&1 || { cat "$work/run.txt"; exit 1; }
[ -f dse-out/quickstart/report.html ] || { cat "$work/run.txt"; echo "dse run wrote no report"; exit 1; }
echo "dse run: $(grep -c . "$work/run.txt") lines, report at $run_dir/dse-out/quickstart/report.html"
echo "wheel check passed"
