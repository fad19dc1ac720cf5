#!/usr/bin/env bash
# Sourced by the device scripts (repository root, a machine with a GPU, PyTorch and no package index):
# installs the pure-Python and binary wheels carried in WHEELS (default .device_wheels: Snakemake,
# isal, ahocorasick-rs, orjson, datasets, jsonschema, ai2-olmo-core and what they need beyond the
# machine's own packages) into SITE, builds the package's Cython kernels in place, and puts an
# `intervene` command on PATH. How to fill WHEELS: benchmarks/results/gpu_demo_h200.md.
#   source benchmarks/device_setup.sh [WHEELS]
WHEELS=${1:-.device_wheels}
SITE=${SITE:-/tmp/intervene-site}
if ! ls "$WHEELS"/*.whl > /dev/null 2>&1; then
    echo "device_setup: no wheels in $WHEELS" >&2
    return 1 2> /dev/null || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl || { echo "device_setup: pip install failed" >&2; return 1; }
export PYTHONPATH="$PWD/src:$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 setup.py -q build_ext --inplace > "$SITE/build_ext.log" 2>&1 \
    || { tail -20 "$SITE/build_ext.log" >&2; echo "device_setup: build_ext failed" >&2; return 1; }
mkdir -p "$SITE/bin"
printf '#!/bin/sh\nexec python3 -m intervene.cli "$@"\n' > "$SITE/bin/intervene"
chmod +x "$SITE/bin/intervene"
export PATH="$SITE/bin:$PATH"
