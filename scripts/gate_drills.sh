#!/usr/bin/env bash
# Does the regression gate catch genuine regressions, and does a diverging run end as it
# should? In a fresh clone of this repository: the digits pipeline once, then one drill
# at a time, each undone before the next, the gate run against the committed results.
#
#   bash scripts/gate_drills.sh [workdir]        # about 15 minutes on 2 cores
#   DRILLS="2 4" bash scripts/gate_drills.sh dir  # some drills, reusing dir's finished run
#
# 1. DSCL's last-layer test embeddings replaced by noise (its evaluate stage re-run);
# 2. the sign of the DSCL gradient flipped in the code (Eq. 8);
# 3. a learning rate 100 times too small for one method (N-pairs, last layer);
# 4. a learning rate of 1e30 for one method: one warning line, no traceback.
# Each drill prints the gate's verdict line and its failed rows.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
drills=${DRILLS:-1 2 3 4}
clone="$work/drills"
if [ ! -f "$work/run-finished" ]; then
  rm -rf "$clone"
  git clone -q "$repo" "$clone"
  (cd "$clone" && dvc repro -q > /dev/null)
  touch "$work/run-finished"
fi
cd "$clone"
verdict="$work/gate.md"

gate() {  # the gate's verdict and its failed rows; its exit status printed
  local status=0
  python scripts/check_metrics.py --rev HEAD > "$verdict" || status=$?
  head -n 1 "$verdict"
  grep -F '**FAIL**' "$verdict" | head -n 8 || true
  echo "exit status: $status"
}
restore() {  # the committed code and params, and the outputs of the committed run
  git checkout -q -- .
  dvc checkout -q --force > /dev/null
}
wanted() { [[ " $drills " == *" $1 "* ]]; }

if wanted 1; then
echo "## 1. DSCL's last-layer test embeddings replaced by noise"
python - <<'EOF'
import numpy as np
path = "data/embeddings/digits/dscl_last/test.npy"
x = np.load(path)
np.save(path, np.random.default_rng(0).normal(size=x.shape).astype(np.float32))
EOF
dvc repro -q -s evaluate@digits-dscl_last > /dev/null
gate
restore
fi

if wanted 2; then
echo "## 2. the sign of the DSCL gradient flipped (dscl/objectives/dscl.py, Eq. 8)"
sed -i 's/    return loss, -2.0 \* g  # Eq. (8)/    return loss, 2.0 * g  # Eq. (8)/' dscl/objectives/dscl.py
grep -q "return loss, 2.0 \* g" dscl/objectives/dscl.py
dvc repro -q > /dev/null
gate
restore
fi

if wanted 3; then
echo "## 3. a learning rate 100 times too small (npairs_last on digits: 1e-3 -> 1e-5)"
python - <<'EOF'
import re
text = open("params.yaml").read()
old = "    digits: {<<: *baseline_last, loss: {<<: *npairs}}"
assert old in text
open("params.yaml", "w").write(text.replace(old, "    digits: {<<: *baseline_last, lr: 0.00001, loss: {<<: *npairs}}"))
EOF
dvc repro -q > /dev/null
gate
restore
fi

if wanted 4; then
echo "## 4. a learning rate of 1e30 (npairs_last on digits)"
python - <<'EOF'
text = open("params.yaml").read()
old = "    digits: {<<: *baseline_last, loss: {<<: *npairs}}"
open("params.yaml", "w").write(text.replace(old, "    digits: {<<: *baseline_last, lr: 1.0e+30, loss: {<<: *npairs}}"))
EOF
status=0
dvc repro -s train@digits-npairs_last > "$work/train.log" 2>&1 || status=$?
grep -E "^(warning|error):" "$work/train.log" || true
grep -c "Traceback" "$work/train.log" || true
echo "exit status: $status"
restore
fi
