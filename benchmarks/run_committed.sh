#!/bin/sh
# The staged run behind the committed benchmarks/results/ (CPU, ~20 min on 2 shared cores).
# Every contender on 2-D; the targets' contenders on the other cases; compile for the
# region losses only (its compile time dominates elsewhere).
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
$PYTHON -m benchmarks --cases 3d16_sparse,3d16_onehot --contenders lossfns_torch,monai,naive,floor
$PYTHON -m benchmarks --merge --cases 2d,3d --contenders lossfns_torch,monai,smp,naive,floor,torch_adapter
$PYTHON -m benchmarks --merge --cases 2d_bf16,3d_bf16 --contenders lossfns_torch,monai,floor
$PYTHON -m benchmarks --merge --cases 2d,3d --contenders lossfns_compile --losses dice,tversky
$PYTHON -m benchmarks --merge --cases 2d --contenders lossfns_jax,lossfns_tf,keras,keras_adapter
