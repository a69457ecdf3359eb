#!/usr/bin/env bash
# Compile mmcv from source with its ops into the given Python environment.
#
#   tools/misc/install_mmcv.sh PYTHON MMCV_VERSION
#
# - torch 2.14's headers require C++20, while mmcv 2.1.0's setup.py passes -std=c++17
#   (to g++ and nvcc); the sdist is patched to -std=c++20, nothing else changes.
# - The build never uses pip's cache: a cached wheel may have been built against another torch.
# - No debug info (-g0, appended after Python's own -g): it only slows the 77-file build.
# - CUDA ops are compiled when torch sees a GPU, or with FORCE_CUDA=1 (mmcv's own rule).
set -euo pipefail
PY=${1:?usage: install_mmcv.sh PYTHON MMCV_VERSION}
VERSION=${2:?usage: install_mmcv.sh PYTHON MMCV_VERSION}
if "$PY" -c "import mmcv, sys; from mmcv.ops import ModulatedDeformConv2d; sys.exit(mmcv.__version__ != '$VERSION')" 2>/dev/null; then
  echo "mmcv $VERSION with ops already installed"; exit 0
fi
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$VERSION" -d "$src"
tar xzf "$src/mmcv-$VERSION.tar.gz" -C "$src"
sed -i 's/-std=c++17/-std=c++20/g' "$src/mmcv-$VERSION/setup.py"
grep -q -- '-std=c++20' "$src/mmcv-$VERSION/setup.py" || { echo "ERROR: could not patch mmcv's setup.py for C++20" >&2; exit 1; }
echo "compiling mmcv $VERSION with its ops (several minutes)"
CFLAGS="${CFLAGS:-} -g0" MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip install -q --no-build-isolation --no-cache-dir --no-deps --force-reinstall "$src/mmcv-$VERSION"
"$PY" -c "from mmcv.ops import ModulatedDeformConv2d" || { echo "ERROR: mmcv installed without its compiled ops" >&2; exit 1; }
