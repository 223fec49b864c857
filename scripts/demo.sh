#!/usr/bin/env bash
# Set up and run the end-to-end demo on this machine's CPU: synthetic conveyor, training, distillation,
# INT8 export, the inspection loop on a video with a simulated GPIO, and the latency table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ddad-edge demo --out demo-out "$@"
