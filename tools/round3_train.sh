#!/bin/bash
# Round 3 (issue #18), every stage in one background job: the float phase, then the uniform
# int8 and the PROM QAT forks from its checkpoint, then the cards' evaluation and the energy
# plot.  Each stage resumes where it stopped (--resume, checkpoints outside the repository);
# a finished stage leaves DONE in its checkpoint folder and is skipped when this is run
# again, so after any interruption the same command continues the whole plan:
#
#     nohup setsid tools/round3_train.sh >> ~/.cache/promref/r3.log 2>&1 &
#
# Environment: QAT_FLAGS go to both forks (empty: the default QAT recipe, docs/training.md);
# PROMREF_RUNS is the checkpoint root (default ~/.cache/promref); ROUND3_OUT the folder of the
# weights and cards (default weights/), ROUND3_PLOT the energy plot's file; ROUND3_TRAIN and ROUND3_QAT_EPOCHS replace the recipe's
# network and epochs (tests/test_round3_script.py runs the whole plan on a tiny budget).
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1          # the same bits with 2; avoids spinning threads (docs/training.md)
CACHE=${PROMREF_RUNS:-$HOME/.cache/promref}
OUT=${ROUND3_OUT:-weights}
RUN="nice -n 19 python -m promref train ${ROUND3_TRAIN:---width 1.0 --epochs-float 100}"
QAT="--epochs-qat ${ROUND3_QAT_EPOCHS:-15} ${QAT_FLAGS:-} --init-from $CACHE/r3-float/last.npz"

stage() {   # stage NAME COMMAND...: run COMMAND unless NAME's folder holds DONE
    local dir="$CACHE/$1"; shift
    if [ -f "$dir/DONE" ]; then echo "$(date -u +%FT%TZ) $dir: done, skipped"; return; fi
    echo "$(date -u +%FT%TZ) $dir: $*"
    "$@"
    touch "$dir/DONE"
}

stage r3-float $RUN --epochs-qat 0 --checkpoint-dir "$CACHE/r3-float" --resume
stage r3-int8 $RUN $QAT --scheme int8 --checkpoint-dir "$CACHE/r3-int8" --resume --out $OUT/mbv2_int8.npz
stage r3-prom $RUN $QAT --scheme prom --checkpoint-dir "$CACHE/r3-prom" --resume --out $OUT/mbv2_prom.npz \
    --compare-with $OUT/mbv2_int8.npz
python -m promref evaluate $OUT/mbv2_prom.npz $OUT/mbv2_int8.npz
python -m promref energy $OUT/mbv2_prom.npz --cards $OUT/mbv2_int8.json $OUT/mbv2_prom.json \
    --plot "${ROUND3_PLOT:-docs/energy_vs_accuracy.png}"
echo "$(date -u +%FT%TZ) round 3 finished: commit $OUT/mbv2_{prom,int8}.{npz,json} and the plot"
