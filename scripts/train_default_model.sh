#!/usr/bin/env bash
# Reproduce models/default.pt and models/default.onnx from a clean clone (models/README.md).
#
#   make install && scripts/train_default_model.sh [REALDATA_DIR]     # REALDATA_DIR: ../shared/realdata
#
# About 4.5 h on 2 CPU cores: the synthetic bank, two imports, two training stages, export.
# Everything lands under data/ and saved/ (both ignored by git); models/ is overwritten last.
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${1:-../shared/realdata}
export PATH="$PWD/.venv/bin:$PATH"
THREADS=${THREADS:-2}

# The starting point: the ENet this package trained on synthetic rooms only (18 CPU-hours,
# docs/model-history.md), as shipped in commit 3d4a263.
mkdir -p data
git show 3d4a263:models/default.pt > data/enet_synthetic.pt

# 5,600 synthetic rooms from a texture bank no earlier model trained on (seed 14).
[ -d data/synth_s14 ] || matseg data synth --output data/synth_s14 --count 5600 --seed 14 --variants 768 \
    --add-textures gazebo_worlds/materials/textures --val 0.05 --test 0 --workers 2

# The shared real photographs, imported with their licences; test splits are never trained
# or selected on.
[ -d data/real/smdra ] || matseg data import --format coco --annotations "$REAL/smdra/annotations.json" \
    --images "$REAL/smdra/images" --mapping config/import/smdra.yaml --licence "$REAL/smdra/LICENSE" \
    --output data/real/smdra
[ -d data/real/trashnet ] || matseg data import --format voc --annotations "$REAL/trashnet/annotations" \
    --images "$REAL/trashnet/images" --mapping config/import/trashnet.yaml --licence "$REAL/trashnet/LICENSE" \
    --output data/real/trashnet

run_dir() { ls -d "$1"/*/ | grep -v '/runs/$' | tail -n 1; }

# Stage 1: the plain ENet on synthetic rooms and real photographs together (16 epochs).
matseg train --config config/train/default_stage1.json --init-weights data/enet_synthetic.pt \
    --save-dir saved/default_stage1 --threads "$THREADS" --no-progress
STAGE1=$(run_dir saved/default_stage1)

# Stage 2: the image-level context prior added (it starts at zero), 14 epochs.
matseg train --config config/train/default.json --init-weights "$STAGE1/last.pt" \
    --save-dir saved/default --threads "$THREADS" --no-progress
STAGE2=$(run_dir saved/default)

# The checkpoint chosen on the validation splits (models/README.md says which epoch), as a
# slim checkpoint and as ONNX at the node's input size.
matseg export --model "$STAGE2/${CHECKPOINT:-last.pt}" --output models/default.pt --input-size 432 576
matseg export --model models/default.pt --output models/default.onnx --input-size 432 576
echo "models/default.pt and models/default.onnx written; evaluate them with the commands of models/README.md"
