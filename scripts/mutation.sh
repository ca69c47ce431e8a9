#!/usr/bin/env bash
# Mutation testing of the gate's deciding modules (`make mutation`; docs/gate.md, "How strong
# the gate's tests are"): mutmut 3 with the [tool.mutmut] settings of pyproject.toml, run in a
# copy of the tree so that the checkout gets no mutants/ directory, then scored by
# scripts/mutation_report.py (exit 1 when a module scores below MUTATION_MIN percent).
#
#   scripts/mutation.sh [BIN]   BIN: the virtualenv's bin directory (default .venv/bin)
#   MUTATION_DIR=dir            where to copy the tree (default: a new temporary directory;
#                               it is kept, so `cd dir && BIN/mutmut show NAME` works after)
#   MUTATION_JOBS=n             mutants tested at once (default: the number of CPUs)
#   MUTATION_MIN=95             the lowest acceptable score, in percent
set -euo pipefail

bin=$(cd "${1:-.venv/bin}" && pwd)
root=$(pwd)
work=${MUTATION_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/shadowswap-mutation.XXXXXX")}
mkdir -p "$work"
# what the selected tests need: the package, the tests, the shipped gate.yml, the settings
cp -R src tests deploy pyproject.toml "$work"/
find "$work" -name __pycache__ -prune -exec rm -rf {} +
echo "mutation testing in $work"
cd "$work"
"$bin/mutmut" run --max-children "${MUTATION_JOBS:-$(nproc)}"
"$bin/python" "$root/scripts/mutation_report.py" \
    --mutmut "$bin/mutmut" \
    --equivalents "$root/scripts/mutation_equivalents.toml" \
    --min "${MUTATION_MIN:-95}"
