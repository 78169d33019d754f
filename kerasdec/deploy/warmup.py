"""TF Serving warm-up: ``assets.extra/tf_serving_warmup_requests`` in a SavedModel version folder.

TF Serving replays these requests when it loads a version, before it reports the version available,
so the first real request does not pay for graph optimisation and oneDNN kernel creation. The file is
a TFRecord of ``PredictionLog`` protos, which only the optional ``tensorflow-serving-api`` package
defines (``pip install kerasdec[serving]``); without it the export still works and logs that the
warm-up file was skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kerasdec.inference.contract import INPUT_IMAGE, SIGNATURE_IMAGE, ModelInfo

logger = logging.getLogger(__name__)

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"  # the name TF Serving looks for
MODEL_NAME = "segdec"  # TF Serving ignores the name in warm-up requests; kept readable
GREY = 0.5  # the warm-up image: mid-grey at the trained size


def write_warmup(version_dir: Path | str, info: ModelInfo) -> Path | None:
    """Write one ``serving_default`` request (a grey image of the trained size) as the warm-up file.

    Returns:
        The file written, or None when tensorflow-serving-api is not installed (logged).
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        logger.info("TF Serving warm-up skipped: tensorflow-serving-api is not installed "
                    "(pip install 'kerasdec[serving]' to write %s/%s)", WARMUP_DIR, WARMUP_FILE)
        return None
    import tensorflow as tf

    image = np.full((1, info.height, info.width, info.channels), GREY, np.float32)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name=SIGNATURE_IMAGE))
    request.inputs[INPUT_IMAGE].CopyFrom(tf.make_tensor_proto(image))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    path = Path(version_dir) / WARMUP_DIR / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:  # inside the unpublished version: no rename needed
        writer.write(log.SerializeToString())
    return path
