#!/usr/bin/env bash
# A benchmark-only environment with Brian2 (it needs numpy<2.4) and PyNN; Sapicore never imports it.
# Usage: bash benchmarks/setup_brian2.sh [DIR]   then   export SAPICORE_BRIAN_PYTHON=DIR/bin/python
set -euo pipefail
dir=${1:-.brian2-env}
python -m venv "$dir"
"$dir/bin/pip" install --quiet "brian2>=2.5" "numpy<2.4" cython "pyNN>=0.13" pytest matplotlib scipy  # pyNN.brian2 for pynn_scenarios.py
"$dir/bin/python" -c "import brian2; print('Brian2', brian2.__version__, 'ready in $dir')"
