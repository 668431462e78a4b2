# Sourced by scripts/run and scripts/test: make .venv and install the project into it
# when it is missing or pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ensure_venv() {
  local extra="$1" stamp=".venv/.modelgraph-installed$1"
  if [ ! -x .venv/bin/python ]; then
    local py="${PYTHON:-python3}"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
      echo "modelgraph needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
      exit 1
    }
    "$py" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extra"
    touch "$stamp"
  fi
}
