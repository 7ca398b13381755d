#!/bin/sh
# The staged run behind the committed benchmarks/results/ (CPU, about 25 min on 2 shared
# cores; wait for a quiet machine: the headline figures are wall-clock times).
#   Headline: each framework's default threads (--threads 0), wall clock.
#   Second view: one thread per framework (--threads 1), process CPU time; with the headline
#   it also gives lossfns' thread scaling.
#   Overhead: tiny inputs, one thread, lossfns' torch modules against MONAI's; BEFORE=DIR (default
#   /tmp/oldmain when it holds a checkout) adds the same measurement of an earlier lossfns for
#   the before/after table. Without it the before figures already in results.json are kept.
# Every contender on 2-D; the targets' contenders on the other cases; compile for the region
# losses only (its compile time dominates elsewhere). On a shared machine each worker drops
# what it timed while other processes held the CPUs and waits for them, up to QUIET seconds.
set -e
cd "$(dirname "$0")/.."
BENCH="${PYTHON:-python} -m benchmarks"
BEFORE=${BEFORE:-/tmp/oldmain}
QUIET=${QUIET:-60}
ALL_LOSSES=dice,tversky,categorical_focal,binary_focal,unified_focal,dice_ce,generalized_dice
$BENCH --quiet-wait $QUIET --cases 3d16_sparse,3d16_onehot --contenders lossfns_torch,monai,naive,floor
$BENCH --quiet-wait $QUIET --merge --cases 2d,3d,3d_sparse --contenders lossfns_torch,monai,smp,naive,floor,torch_adapter \
    --losses "$ALL_LOSSES"
$BENCH --quiet-wait $QUIET --merge --cases 2d_bf16,3d_bf16 --contenders lossfns_torch,monai,floor
$BENCH --quiet-wait $QUIET --merge --cases 2d,3d --contenders lossfns_compile --losses dice,tversky
$BENCH --quiet-wait $QUIET --merge --cases 2d --contenders lossfns_jax,lossfns_tf,keras,keras_adapter
$BENCH --quiet-wait $QUIET --merge --threads 1 --cases 2d,3d --contenders lossfns_torch,monai,smp,floor
$BENCH --quiet-wait $QUIET --merge --cases 3d,3d_sparse --contenders lossfns_torch,monai,nnunet --losses wasserstein_dice,topk
if [ -d "$BEFORE/lossfns" ]; then
    $BENCH --quiet-wait $QUIET --merge --cases overhead --before "$BEFORE"
else
    $BENCH --quiet-wait $QUIET --merge --cases overhead
fi
