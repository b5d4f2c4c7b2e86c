#!/bin/sh
# The one install step of ragbot, used by `make demo`/`make test` (Makefile) and by the container image
# (Dockerfile): deploy/install.sh PIP [pip install arguments...]
# TORCH_INDEX (optional) adds a package index for torch; the Dockerfile sets PyTorch's CPU-only index so the
# image never pulls the CUDA build. The pin itself (torch==2.13.0) is in pyproject.toml.
set -eu
pip="$1"
shift
exec "$pip" install -q ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$@"
