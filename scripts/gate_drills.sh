#!/usr/bin/env bash
# Does the regression gate catch genuine regressions, and does a diverging run end as it
# should? In a fresh clone of this repository: the digits pipeline once, then one drill
# at a time, each undone before the next, the gate run against the committed results.
#
#   bash scripts/gate_drills.sh [workdir]        # about 15 minutes on 2 cores
#
# 1. DSCL's last-layer test embeddings replaced by noise (its evaluate stage re-run);
# 2. the sign of the DSCL gradient flipped in the code (Eq. 8);
# 3. a learning rate 100 times too small for one method (N-pairs, last layer);
# 4. a learning rate of 1e30 for one method: one warning line, no traceback.
# Each drill prints the gate's verdict line and its failed rows.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
clone="$work/drills"
rm -rf "$clone"
git clone -q "$repo" "$clone"
cd "$clone"
dvc repro -q > /dev/null

gate() {  # the gate's verdict and its failed rows; its exit status printed
  local status=0
  python scripts/check_metrics.py --rev HEAD > gate.md || status=$?
  head -n 1 gate.md
  grep -F '**FAIL**' gate.md | head -n 8 || true
  echo "exit status: $status"
}
restore() {
  git checkout -q -- .
  dvc checkout -q > /dev/null
}

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

echo "## 2. the sign of the DSCL gradient flipped (dscl/loss.py, Eq. 8)"
sed -i 's/    return loss, -2.0 \* g  # Eq. (8)/    return loss, 2.0 * g  # Eq. (8)/' dscl/loss.py
grep -q "return loss, 2.0 \* g" dscl/loss.py
dvc repro -q > /dev/null
gate
restore

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

echo "## 4. a learning rate of 1e30 (npairs_last on digits)"
python - <<'EOF'
text = open("params.yaml").read()
old = "    digits: {<<: *baseline_last, loss: {<<: *npairs}}"
open("params.yaml", "w").write(text.replace(old, "    digits: {<<: *baseline_last, lr: 1.0e+30, loss: {<<: *npairs}}"))
EOF
status=0
dvc repro -s train@digits-npairs_last > train.log 2>&1 || status=$?
grep -E "^(warning|error):" train.log || true
grep -c "Traceback" train.log || true
echo "exit status: $status"
restore
