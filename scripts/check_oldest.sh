#!/usr/bin/env bash
# The declared floors, run: a venv with exactly the lowest version each range in pyproject.toml
# allows (its dependencies and the test extra; what they pull in resolves freely), then the suite.
#   bash scripts/check_oldest.sh [VENV_DIR] [PYTEST_ARGS...]   (default .venv-oldest)
# torch is the CPU build on this disk (2.13.0), which is also the torch floor. A failure means a
# floor is too low: raise it to a version that passes and say so in docs/versions.md.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-oldest}
shift || true
FLOORS=$(python3 - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["test"]:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][^,;\s]*)", req).groups()
    print(f"{name}=={floor}")
PY
)
echo "floors: $(echo $FLOORS)"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q $FLOORS
"$VENV/bin/pip" install -q --no-deps -e .
"$VENV/bin/pip" check
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -rf "$@"
