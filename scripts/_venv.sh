# Sourced by the set-up scripts: create .venv if missing and install the project into it with
# the extras in $INSTALL_EXTRAS (default: every extra, as the test suite needs; the quickstart
# asks for `cpu` only).
PY=${PYTHON:-python3}
INSTALL_EXTRAS=${INSTALL_EXTRAS:-cpu,cluster,thor,dev}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=.venv/.installed-$( { cat pyproject.toml; echo "$INSTALL_EXTRAS"; } | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    python -m pip install -q --upgrade pip
    python -m pip install -q -e ".[$INSTALL_EXTRAS]"
    touch "$stamp"
fi
