#!/usr/bin/env bash
# The newest releases, on purpose: a venv with the newest version of every dependency (no
# constraints), the suite, and which tests fail with which versions. How the pins move forward:
#   bash scripts/check_newest.sh [VENV_DIR] [--refresh] [PYTEST_ARGS...]  (default .venv-newest)
# With --refresh and a passing suite, constraints/tested.txt is rewritten from this venv (review
# the diff, then commit it with the versions in docs/versions.md). torch stays the CPU build on
# this disk (TORCH=torch==2.13.0; another spec, e.g. TORCH=torch==2.14.1, tries that one).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-newest}
shift || true
REFRESH=0
if [ "${1:-}" = "--refresh" ]; then REFRESH=1; shift; fi
TORCH=${TORCH:-torch==2.13.0}
rm -rf "$VENV"
python3 -m venv "$VENV" || exit 2
"$VENV/bin/pip" install -q "$TORCH" || exit 2
"$VENV/bin/pip" install -q --upgrade setuptools wheel || exit 2  # the build back end's, pinned too
"$VENV/bin/pip" install -q --upgrade -e '.[test]' || exit 2
echo "== versions (direct dependencies)"
"$VENV/bin/python" - <<'PY'
import re, tomllib
from importlib.metadata import version
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["test"]:
    name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)
    print(f"  {name} {version(name)}")
PY
echo "== suite"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -rf "$@" | tee "$VENV/pytest.log"
status=${PIPESTATUS[0]}
echo "== failing tests"
grep -E '^(FAILED|ERROR) ' "$VENV/pytest.log" \
  || { [ "$status" -eq 0 ] && echo "  none"; } || echo "  none listed (pytest exited with $status)"
if [ "$status" -eq 0 ] && [ "$REFRESH" -eq 1 ]; then
  { sed -n '1,/^[^#]/{/^#/p}' constraints/tested.txt
    "$VENV/bin/pip" freeze --all --exclude-editable | grep -v '^pip==' \
      | sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/' | sort -f; } \
    > constraints/tested.txt.new && mv constraints/tested.txt.new constraints/tested.txt
  echo "== constraints/tested.txt refreshed from $VENV (review: git diff constraints/)"
fi
exit "$status"
