#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before a GPU check: download what the GPU machine's image
# lacks (Optuna, optuna-dashboard, plotly and their own needs; torch, numpy, scipy, scikit-learn,
# tqdm and PyYAML are there) as wheels for its
# Python 3.12 into .whl/ (ignored by git), and the MNIST files into .mnist/ (ignored), both to
# be named in the device tool's `carry`. See benchmarks/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl .mnist
platforms=()
for n in 2_28 2_27 2_24 2_17 2_5; do platforms+=(--platform "manylinux_${n}_x86_64"); done
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl \
  optuna==5.0.0 alembic==1.20.1 colorlog==6.12.0 Mako==1.4.3 SQLAlchemy==2.1.9 greenlet==3.5.6 \
  plotly==7.1.0 narwhals==2.29.0 optuna-dashboard==0.21.0 bottle==0.13.4
cp "${MNIST_SOURCE:-../shared/mnist}"/*.gz .mnist/
grep -qx '/.mnist/' .git/info/exclude 2>/dev/null || echo '/.mnist/' >> .git/info/exclude
ls -la .whl .mnist
