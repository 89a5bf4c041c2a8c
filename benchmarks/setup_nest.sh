#!/usr/bin/env bash
# A benchmark-only environment with NEST 3 (a ready wheel); Sapicore never imports it.
# Usage: bash benchmarks/setup_nest.sh [DIR]   then   export SAPICORE_NEST_PYTHON=DIR/bin/python
set -euo pipefail
dir=${1:-.nest-env}
python -m venv "$dir"
"$dir/bin/pip" install --quiet nest-simulator numpy PyNN  # PyNN: pyNN.nest for the PyNN benchmarks
"$dir/bin/python" -c "import nest; print('NEST', nest.__version__, 'ready in $dir')" 2>/dev/null
