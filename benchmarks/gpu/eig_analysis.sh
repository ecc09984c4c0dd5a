#!/bin/bash
# The multi-scene EIG analysis on one GPU: SynthStreet seeds (training seeds 0 1, held-out seeds 8-12; 480x320,
# 40 frames x 3 cameras, shifts 3 and 6 m), each reconstructed as the full demo's 3DGS (7000 steps, refinement
# stops at 75 %, every 10th frame held out), PAR seeds at once on the one GPU, then `faithfusion eig-analysis`
# per seed (per-view statistics) and over each group of seeds (means and 95 % intervals).
# Resumable across device commands on the same warm machine (work in /tmp/eig_analysis): a finished scene, run or
# per-view file is skipped, an interrupted recon resumes from its last checkpoint (every 1000 steps). Every step is
# bounded by `timeout` so the call ends CALL_SECONDS (default 560) after it began, with its files written.
# Per-view files carried back in .gpu/eig_analysis/{train,heldout}/views/seedS.json are reused (no recon needed).
# A warm machine can be lost between calls (with its recons): a call whose seeds all finish within it is safer.
# On one H100, the two training seeds (PAR=2) took 269 s from synth to their per-view files.
#   bash benchmarks/gpu/eig_analysis.sh            (carry .whl and .gpu; call again until it prints "complete")
#   SEEDS_TRAIN (default "0 1"), SEEDS_HELDOUT ("8 9 10 11 12"; " " runs the other group only), PAR (4), FORMS (fisherrf faithfusion pixel combined;
#   combined = the per-view rank mean of pixel EIG and image gradient, eig/combined.py), FRAMES (max frames per
#   shift, 12), STEPS (7000), CALL_SECONDS (560)
# Results, all in ONE archive $OUT/eig_analysis.tgz (the device returns at most 8 files):
#   eig_analysis/{train,heldout}/{eig_analysis.json,eig_analysis.md,retained.png,views/seedS.json},
#   eig_analysis/form_choice.txt (`faithfusion eig-form-choice` on the training summary: the written rule's form),
#   eig_analysis/logs/seedS.txt (tails), eig_analysis/status.txt.
# Beside it, small copies: $OUT/status.txt, $OUT/form_choice.txt, $OUT/{train,heldout}_eig_analysis.json.
# To carry the per-view files to a fresh machine: tar -C .gpu -xzf eig_analysis.tgz
set -o pipefail
source ${SETUP:-benchmarks/gpu/setup.sh} > /dev/null 2>&1  # SETUP=/dev/null: the caller has sourced it
t0=$(date +%s); deadline=$(( t0 + ${CALL_SECONDS:-560} - 25 ))
W=/tmp/eig_analysis; R=$OUT/eig_analysis; mkdir -p $W/scenes $W/runs $W/logs $R/logs
ff="python3 -m faithfusion.cli"; STEPS=${STEPS:-7000}; PAR=${PAR:-4}
TRAIN=${SEEDS_TRAIN:-0 1}; HELDOUT=${SEEDS_HELDOUT:-8 9 10 11 12}
FORMS=${FORMS:-fisherrf faithfusion pixel combined}
AFLAGS="--shifts 3.0 6.0 --max-frames ${FRAMES:-12} --forms $FORMS --reference fisherrf --samples-per-view 20000 \
  --bootstrap 2000 --seed 0 --device cuda --no-progress"
left() { echo $(( deadline - $(date +%s) )); }
group() { case " $TRAIN " in *" $1 "*) echo train;; *) echo heldout;; esac; }
for g in train heldout; do  # per-view files carried back from an earlier machine, when made with these forms
  mkdir -p $W/$g/views
  for f in .gpu/eig_analysis/$g/views/*.json; do
    [ -f "$f" ] && python3 -c "import json, sys; sys.exit(json.load(open('$f'))['settings']['forms'] != '$FORMS'.split())" \
      && cp -n "$f" $W/$g/views/
  done
done

seed_job() {  # synth -> recon -> per-view statistics of one seed, each step skipped when done
  local s=$1 g=$(group $1) scene=$W/scenes/seed$1 run=$W/runs/seed$1 log=$W/logs/seed$1.txt
  [ -f $W/$g/views/seed$s.json ] && return 0
  if [ ! -f $scene/scene.json ]; then
    [ $(left) -gt 60 ] || return 1
    timeout $(left) $ff synth --out $scene --seed $s --shifts 3.0 6.0 --no-progress --overwrite >> $log 2>&1 || return 1
  fi
  if [ ! -f $run/metrics.json ]; then
    [ $(left) -gt 60 ] || return 1
    local mode="--overwrite"; [ -f $run/config.yaml ] && mode="--resume"
    timeout $(left) $ff recon --data $scene --out $run --steps $STEPS --holdout-every 10 --ckpt-every 1000 \
      --strategy.refine-stop $(( STEPS * 3 / 4 )) --no-save-renders --no-progress --device cuda $mode >> $log 2>&1 || return 1
  fi
  [ $(left) -gt 90 ] || return 1
  timeout $(left) $ff eig-analysis --runs $run --out $W/$g --no-aggregate $AFLAGS >> $log 2>&1
}

for s in $TRAIN $HELDOUT; do
  seed_job $s &
  while [ $(jobs -rp | wc -l) -ge $PAR ]; do wait -n; done
done
wait
echo "seeds $(( $(date +%s) - t0 )) s"

complete=1; : > $R/status.txt
for g in train heldout; do
  seeds=$TRAIN; [ $g = heldout ] && seeds=$HELDOUT
  [ -z "${seeds// }" ] && continue  # this group was not asked for (SEEDS_TRAIN=" " or SEEDS_HELDOUT=" ")
  runs=""; missing=""
  for s in $seeds; do
    [ -f $W/$g/views/seed$s.json ] && runs="$runs $W/runs/seed$s" || missing="$missing $s"
  done
  mkdir -p $R/$g/views; cp $W/$g/views/*.json $R/$g/views/ 2>/dev/null
  if [ -n "$missing" ]; then
    complete=0; echo "$g: seeds$missing not finished" | tee -a $R/status.txt; continue
  fi
  # every run has its per-view file: this only aggregates (the run folders need not exist)
  timeout $(( $(left) > 20 ? $(left) : 20 )) $ff eig-analysis --runs $runs --out $W/$g $AFLAGS > $W/logs/aggregate_$g.txt 2>&1 \
    || { complete=0; echo "$g: aggregation failed"; tail -5 $W/logs/aggregate_$g.txt; continue; }
  cp $W/$g/eig_analysis.json $W/$g/eig_analysis.md $W/$g/retained.png $R/$g/
  echo "$g: complete ($(echo $seeds | wc -w) seeds)" | tee -a $R/status.txt
  # the written rule picks FaithFusion's default form on the training seeds only (3 m and 6 m rows)
  [ $g = train ] && $ff eig-form-choice $R/train/eig_analysis.json 2>&1 | tee $R/form_choice.txt
  python3 -c "
import json; r = json.load(open('$R/$g/eig_analysis.json'))
for key in ('3.0', '6.0'):
    e = r['per_shift'].get(key)
    if not e: continue
    print(f'  |d| = {key} m:', e['scenes'], 'scenes', e['views'], 'views')
    for m, row in e['maps'].items():
        print('   ', m.ljust(16), '  '.join(f\"{q} {c['mean']:.3f} [{c['lo']:.3f},{c['hi']:.3f}]\" for q, c in row.items()
                                       if None not in c.values() and q in ('auroc_unobserved', 'spearman_l1', 'ause_l1')))"
done
for f in $W/logs/seed*.txt; do [ -f $f ] && tail -n 15 $f > $R/logs/$(basename $f); done
[ $complete = 1 ] && echo "complete" | tee -a $R/status.txt || echo "call again to continue" | tee -a $R/status.txt
echo "total $(( $(date +%s) - t0 )) s"
# The device returns at most 8 files: everything goes back as one archive, with small copies beside it
for g in train heldout; do [ -f $R/$g/eig_analysis.json ] && cp $R/$g/eig_analysis.json $OUT/${g}_eig_analysis.json; done
cp $R/status.txt $OUT/status.txt; [ -f $R/form_choice.txt ] && cp $R/form_choice.txt $OUT/form_choice.txt
(cd $OUT && tar czf eig_analysis.tgz eig_analysis && rm -rf eig_analysis && ls -la $OUT)
