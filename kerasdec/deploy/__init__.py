"""Deployment: what leaves the run directory and how it is called.

contract.py    names, request rules and ModelInfo (input size, channels, threshold); no TensorFlow
signatures.py  the SavedModel's in-graph checks, decoding, resizing and outputs
saved_model.py the TF Serving SavedModel (serving_default, serving_bytes, metadata) + metadata.json
tflite.py      TFLite conversion (float32, float16, dynamic, int8)
runners.py     one interface over Keras, SavedModel and TFLite: predict(images) -> scores, heatmaps
check.py       the export self-check on held-out images (AP, score errors, flipped decisions)
data.py        calibration and held-out images for an export
export.py      `kerasdec export`: check first, build hidden, publish one version at once
warmup.py      TF Serving warm-up requests (optional tensorflow-serving-api)
predict.py     `kerasdec predict`: scores.csv and overlays for images of any size
modelfile.py   kerasdec.load_model: a .keras file with one clear error per way it can be wrong
"""
