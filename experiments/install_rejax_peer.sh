#!/usr/bin/env bash
# Install rejax 0.1.3 as a benchmark peer, apart from vecpg's own environment.
# rejax 0.1.3 unpacks gymnax's step as 5 values (gymnax 0.0.9); vecpg needs gymnax 1.0
# (6 values). So rejax and gymnax 0.0.9 go into their own --target dir, which only the
# bench's rejax subprocess puts first on its path. distrax pulls tensorflow-probability,
# whose jax backend reads `jax.interpreters.xla.pytype_aval_mappings` (removed in jax
# 0.10); the bench's rejax script restores that one name before importing rejax.
#
# Usage: bash experiments/install_rejax_peer.sh [DIR]   (default .rejax_peer)
#        VECPG_REJAX_PATH=DIR vecpg bench ...
set -euo pipefail
DIR="${1:-.rejax_peer}"
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m pip install -q --no-deps --target "$DIR" \
    rejax==0.1.3 gymnax==0.0.9 distrax tensorflow-probability decorator gast dm-tree cloudpickle
echo "rejax peer installed in $DIR; run: VECPG_REJAX_PATH=$DIR vecpg bench ..."
