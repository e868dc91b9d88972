#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the dev dependencies into .venv, builds
# the real Kubernetes binaries (cached outside the repo), installs headless Chromium, runs the
# linters, the type checker, the import contracts and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "test.sh: creating .venv" >&2
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q -e '.[dev]' >&2

echo "test.sh: building kube-apiserver, kube-controller-manager, kubectl, etcd (cached)" >&2
RBAC_ADVISOR_K8S_BIN=$(bash scripts/build-k8s.sh | tail -n 1)
export RBAC_ADVISOR_K8S_BIN

bash scripts/install-chromium.sh >&2

echo "test.sh: ruff, mypy, import contracts" >&2
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy rbac_advisor
.venv/bin/lint-imports

echo "test.sh: pytest" >&2
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "test.sh: error: no tests ran" >&2
  exit 1
fi
exit $rc
