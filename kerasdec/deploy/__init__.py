"""Deployment: what leaves the run directory (kerasdec/inference runs it).

signatures.py  the SavedModel's in-graph checks, decoding, resizing and outputs
saved_model.py the TF Serving SavedModel (serving_default, serving_bytes, metadata) + metadata.json
tflite.py      TFLite conversion (float32, float16, dynamic, int8)
check.py       the export self-check on held-out images (AP, score errors, flipped decisions)
data.py        calibration and held-out images for an export
export.py      `kerasdec export`: check first, build hidden, publish one version at once
warmup.py      TF Serving warm-up requests (optional tensorflow-serving-api)
runtimes.py    optional runtimes (ai-edge-litert) checked before any work, without importing them
predict.py     `kerasdec predict`: scores.csv and overlays for images of any size
"""
