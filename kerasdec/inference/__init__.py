"""Running a trained model, whatever its artifact: below training, evaluation and deploy.

contract.py   names, request rules, the input check every runner applies, ModelInfo; no TensorFlow
runners.py    load(path) -> a runner (Keras .keras, SavedModel, TFLite): input size, channels,
              threshold, predict(images) -> scores, heatmaps
threshold.py  which decision threshold a model uses (argument, its own, its run's evaluation, 0.5)
"""
