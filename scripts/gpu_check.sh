#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (no network), run from the repository root:
#
#   device run: command "bash scripts/gpu_check.sh", carry [".whl"], timeout_s 600
#
# after `bash scripts/gpu_wheels.sh` here (docs/gpu.md). Stages, each with its own time limit so one
# hang cannot eat the rest, each writing its log under $OUT as it goes (6 files, no folders):
#   summary.txt   one block per stage: the command, its exit code and time, the log's last lines
#   env.log       nvidia-smi, python3, versions, cupy.show_config(), MPI library
#   cupy.log      tests/backend/libraries/test_cupy.py: the CuPy contract and the GPU-only checks
#   suite.log     the whole test suite on TINYGPT_BACKEND=cupy (pytest-xdist workers where present)
#   bench.log     scripts/bench.py --gpu: tinygpt-CuPy step vs PyTorch CUDA (tinygpt alone without it)
#   train.log     tinygpt train under mpiexec -n 1, then -n 2 on the one GPU (ranks share it: MPI path)
#
# Rehearse on a CPU (the same script; TINYGPT_BACKEND=numpy, no GPU stages' GPU checks):
#   OUT=/tmp/gpu-out SITE=/tmp/gpu-site TINYGPT_BACKEND=numpy bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
BACKEND=${TINYGPT_BACKEND:-cupy}
SITE=${SITE:-/tmp/site}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-540} # seconds for all stages together: the device call allows 600
START=$(date +%s)
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

say() { echo "$*" | tee -a "$SUMMARY"; }

# stage NAME LIMIT_S COMMAND...: run with a time limit (cut to what is left of BUDGET), log to $OUT/NAME.log
stage() {
    local name=$1 limit=$2 left rc t0
    shift 2
    left=$((BUDGET - ($(date +%s) - START)))
    ((limit > left)) && limit=$left
    if ((limit < 10)); then
        say "== $name: skipped, the time budget is spent"
        return
    fi
    say "== $name (limit ${limit}s): $*"
    t0=$(date +%s)
    timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    say "   $name: exit $rc after $(($(date +%s) - t0))s$( ((rc == 124 || rc == 137)) && echo ' (time limit)')"
    tail -n 4 "$OUT/$name.log" | sed 's/^/   | /' | tee -a "$SUMMARY"
}

say "gpu_check: backend $BACKEND, python $($PY -c 'import sys; print(sys.version.split()[0])'), $(date -u +%FT%TZ)"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        >"$OUT/env.log" 2>&1 || { say "installing .whl/ into $SITE failed:"; tail -n 5 "$OUT/env.log" | tee -a "$SUMMARY"; exit 1; }
    # pip --target drops a wheel's data lib/ folder (it would shadow lib/python): MPICH's libmpi is there.
    for wheel in .whl/mpich-*.whl; do
        [ -e "$wheel" ] || continue
        $PY -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$SITE/.mpich"
        rm -rf "$SITE/lib" && mv "$SITE"/.mpich/mpich-*.data/data/lib "$SITE/lib" && rm -rf "$SITE/.mpich"
    done
    say "installed $(ls .whl | wc -l) wheels from .whl into $SITE"
else
    say "no .whl/ folder (run bash scripts/gpu_wheels.sh first): using what $PY has"
fi
export PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PATH=$SITE/bin:$PATH
[ -e "$SITE/lib/libmpi.so.12" ] && export LD_LIBRARY_PATH=$SITE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export TINYGPT_BACKEND=$BACKEND TINYGPT_TEST_BACKENDS=$BACKEND
[ "$BACKEND" = cupy ] && export TINYGPT_REQUIRE_CUPY=1

env_report() {
    nvidia-smi || echo "no nvidia-smi"
    "$PY" - <<'PY'
import importlib, sys
print("python", sys.version.replace("\n", " "), "at", sys.executable)
for name in ("numpy", "array_api_compat", "array_api_extra", "cupy", "torch", "mpi4py", "safetensors", "tqdm", "pytest", "xdist"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"), "from", module.__file__)
    except Exception as exc:
        print(f"{name}: not importable ({type(exc).__name__}: {exc})")
try:
    from mpi4py import MPI
    print("MPI:", MPI.Get_library_version().splitlines()[0])
except Exception as exc:
    print("MPI: not usable:", exc)
try:
    import cupy
    cupy.show_config()
except Exception as exc:
    print("cupy.show_config():", type(exc).__name__, exc)
PY
    echo "mpiexec: $(command -v mpiexec || echo none)"
}
export -f env_report
export PY
stage env 30 bash -c env_report

stage cupy 90 $PY -m pytest -q -p no:cacheprovider -rA tests/backend/libraries/test_cupy.py

# The whole suite; in parallel where pytest-xdist is present, each test limited where pytest-timeout is.
parallel=()
$PY -c "import xdist" 2>/dev/null && parallel=(-n "${GPU_CHECK_WORKERS:-8}")
$PY -c "import pytest_timeout" 2>/dev/null && parallel+=(--timeout 120)
stage suite 270 $PY -m pytest -q -p no:cacheprovider -ra --durations=15 "${parallel[@]}"

if [ "$BACKEND" = cupy ]; then
    stage bench 100 $PY scripts/bench.py --gpu --repeat 2 --sample-tokens 200
else
    stage bench 100 $PY scripts/bench.py --configs small --repeat 1 --sample-tokens 100 --no-torch
fi

# A few training steps on a text written here (no corpus package needed), under mpiexec.
train_runs() {
    local runs corpus
    runs=$(mktemp -d)
    corpus=$runs/corpus.txt
    "$PY" -c "
import random
rng = random.Random(0)
words = 'the of and to in a is that for it as was with be by on not he this are or his from at which'.split()
print(chr(10).join(' '.join(rng.choice(words) for _ in range(12)) for _ in range(4000)))
" >"$corpus"
    local train=(-m tinygpt train --text "$corpus" --max-iters 20 --eval-interval 10 --eval-iters 2 --batch-size 8 --no-progress)
    set -e
    echo "--- mpiexec -n 1"
    mpiexec -n 1 "$PY" "${train[@]}" --out "$runs/n1"
    echo "--- mpiexec -n 2: on one GPU the ranks share it, and sum through host memory over MPI"
    mpiexec -n 2 "$PY" "${train[@]}" --out "$runs/n2"
    echo "--- a sample from the two-rank run"
    "$PY" -m tinygpt sample --checkpoint "$runs/n2" --max-new-tokens 40
}
export -f train_runs
stage train 80 bash -c train_runs
say "gpu_check: done in $(($(date +%s) - START))s; logs in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
