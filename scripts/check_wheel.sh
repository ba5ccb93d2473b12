#!/usr/bin/env bash
# The package as a user installs it: the built wheel alone in a new virtual environment
# (nothing of this checkout on its path), its versions held to requirements.txt's pins,
# then `dscl --version`, `dscl --help` and one `dscl embed` of digits images with the
# digits model (run after `dvc repro`). TORCH_INDEX_URL, when set, is where torch and
# torchvision come from first (the CI workflow's CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
model="$root/models/digits-dscl_last/model.pt"
images="$root/data/prepared/digits/images/5"
[ -f "$model" ] && [ -d "$images" ] || { echo "error: run dvc repro first (needs $model and $images)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/dist" .
python3 -m venv "$work/env"
pip=("$work/env/bin/python" -m pip install -q --disable-pip-version-check -c "$root/requirements.txt")
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "${pip[@]}" --index-url "$TORCH_INDEX_URL" torch torchvision
fi
"${pip[@]}" "$work"/dist/dscl-*.whl

cd "$work"  # away from the checkout: the installed package, not the sources
where=$("$work/env/bin/python" -c "import dscl; print(dscl.__file__)")
case "$where" in "$root"/*) echo "error: dscl imported from the checkout ($where)" >&2; exit 1;; esac
"$work/env/bin/dscl" --version
"$work/env/bin/dscl" --help > /dev/null
"$work/env/bin/dscl" embed "$model" "$images" -o "$work/five.npy"
"$work/env/bin/python" -c "import numpy; e = numpy.load('$work/five.npy'); assert e.ndim == 2 and len(e) > 0, e.shape"
echo "the wheel alone: dscl --version, --help and embed work ($where)"
