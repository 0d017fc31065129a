#!/usr/bin/env bash
# Train the default model's recipe (config/train/default.json: PP-LiteSeg on MobileNetV2, from
# scratch, on synthetic rooms, composites of the real photographs and the real photographs)
# and export it to models/ once the run is complete. Many CPU hours: run it in the background
# and start it again whenever it stopped; it carries on where it was.
#
#   make install
#   setsid nohup scripts/train_default_model.sh ../shared/realdata >> saved/default_model.log 2>&1 &
#   scripts/train_default_model.sh --status          # where it is, and the hours spent so far
#
# Every step is skipped when its output exists: the synthetic bank, the two imports and the
# composite sets (under data/), then training, which resumes from the run's last.pt (written
# after every epoch; TensorBoard continues in the same folder). State lives in STATE_DIR
# (default saved/default_model, ignored by git): the run folder, `sittings.tsv` (when each
# sitting started and from which epoch) and `done` once the last epoch is trained. The hours
# are those of completed epochs, kept in each checkpoint (`elapsed_s`), so a sitting killed
# mid-epoch loses only that epoch. Data and state may live outside the work tree, to outlast
# a fresh checkout: DATA=/somewhere/data links data/ there; STATE_DIR=/somewhere/state.
# The currently shipped ENet-context model was made by this script as of commit af2e79d.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
THREADS=${THREADS:-2}
STATE=${STATE_DIR:-saved/default_model}
CONFIG=config/train/default.json
mkdir -p "$STATE"

last_checkpoint() { { ls -t "$STATE"/run/*/*/last.pt 2>/dev/null || true; } | head -n 1; }
progress() {  # CKPT -> "epoch E of N, H h of completed epochs"
    python - "$1" <<'PY'
import sys, torch
c = torch.load(sys.argv[1], weights_only=True)
print(f"epoch {c['epoch']} of {c['config']['trainer']['epochs']}, "
      f"{c.get('elapsed_s', 0.0) / 3600:.2f} h of completed epochs")
PY
}

if [ "${1:-}" = "--status" ]; then
    ckpt=$(last_checkpoint)
    echo "state: $STATE"
    if [ -n "$ckpt" ]; then echo "$ckpt: $(progress "$ckpt")"; else echo "training not started"; fi
    [ -f "$STATE/sittings.tsv" ] && echo "sittings: $(($(wc -l < "$STATE/sittings.tsv") - 1))"
    [ -f "$STATE/done" ] && echo "training complete"
    exit 0
fi
REAL=${1:-../shared/realdata}
if [ -n "${DATA:-}" ] && [ ! -e data ]; then mkdir -p "$DATA" && ln -s "$DATA" data; fi
mkdir -p data

# 5,600 synthetic rooms (texture bank seed 14, as the shipped model's); 5 % validation.
[ -d data/synth_s14 ] || matseg data synth --output data/synth_s14 --count 5600 --seed 14 --variants 768 \
    --add-textures gazebo_worlds/materials/textures --val 0.05 --test 0 --workers 2

# The shared real photographs with their licences, split train/val/test (seed 0). Test splits
# are never trained or selected on.
[ -d data/real/smdra ] || matseg data import --format coco --annotations "$REAL/smdra/annotations.json" \
    --images "$REAL/smdra/images" --mapping config/import/smdra.yaml --licence "$REAL/smdra/LICENSE" \
    --output data/real/smdra
[ -d data/real/trashnet ] || matseg data import --format voc --annotations "$REAL/trashnet/annotations" \
    --images "$REAL/trashnet/images" --mapping config/import/trashnet.yaml --licence "$REAL/trashnet/LICENSE" \
    --output data/real/trashnet

# Multi-material composites (copy-paste of real objects onto rooms and photographs, and
# mosaics), each set from its own splits only: training from the training splits, the
# validation set (checkpoint choice) from the validation splits, at least two materials each.
composite() {  # SPLIT OUTPUT COUNT SEED [more options]
    local split=$1 out=$2 count=$3 seed=$4; shift 4
    [ -d "$out" ] || matseg data composite --split "$split" --output "$out" --count "$count" --seed "$seed" \
        --source data/real/trashnet --source data/real/smdra \
        --background data/synth_s14 --background data/real/trashnet --background data/real/smdra \
        --mosaic 0.2 --workers 2 "$@"
}
composite train data/composite_train 3000 1
composite val data/composite_val 200 2 --min-materials 2

# Training, resumed from the last epoch a previous sitting finished.
if [ ! -f "$STATE/done" ]; then
    [ -f "$STATE/sittings.tsv" ] || printf 'start_utc\tfrom\n' > "$STATE/sittings.tsv"
    ckpt=$(last_checkpoint)
    if [ -n "$ckpt" ]; then
        printf '%s\t%s\n' "$(date -u +%FT%TZ)" "$(progress "$ckpt")" >> "$STATE/sittings.tsv"
        echo "resuming $ckpt: $(progress "$ckpt")"
        matseg train --resume "$ckpt" --threads "$THREADS" --no-progress
    else
        printf '%s\t%s\n' "$(date -u +%FT%TZ)" "the start" >> "$STATE/sittings.tsv"
        matseg train --config "$CONFIG" --save-dir "$STATE/run" --threads "$THREADS" --no-progress
    fi
    touch "$STATE/done"
    echo "training complete: $(progress "$(last_checkpoint)")"
fi

# The checkpoint to ship is chosen on the validation sets (models/README.md says which and
# why); CHECKPOINT names it, default the run's best.pt. Exported at the node's input size.
RUN=$(dirname "$(last_checkpoint)")
matseg export --model "$RUN/${CHECKPOINT:-best.pt}" --output models/default.pt
matseg export --model models/default.pt --output models/default.onnx
echo "models/default.pt and models/default.onnx written; evaluate them with the commands of models/README.md"
