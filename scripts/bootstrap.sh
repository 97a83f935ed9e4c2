#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) and installs imaccess into it; sourced by scripts/dev and scripts/test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "imaccess needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
extras="${IMACCESS_EXTRAS-dev}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
