# Sourced by scripts/test and scripts/demo: make (or reuse) the project's virtualenv.
# LIANMO_VENV overrides its location; it is reinstalled when pyproject.toml changes.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LIANMO_VENV:-"$root/.venv"}
extras=${1:-}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtualenv in $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.lianmo-installed$extras"
want=$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing lianmo${extras} into $venv (takes a minute the first time)" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -e "$root$extras" >&2
    echo "$want" > "$stamp"
fi
