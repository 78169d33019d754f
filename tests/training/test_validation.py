"""ValidateAP's TensorBoard output: the PR curve in the PR-curve plugin, no AP for unvalidated epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasdec.evaluation.metrics import average_precision
from kerasdec.training.validation import PR_CURVE_TAG, ValidateAP

LABELS = np.array([0, 1, 0, 1, 1, 0, 0, 1], bool)
LOGITS = np.array([-2.0, 1.5, 0.3, 0.2, 3.0, -1.0, -0.5, -0.1], np.float32)


class FakeModel:
    """What ValidateAP uses of a model: predict on the validation set, save (sized by its variables)."""

    variables: list = []

    def predict(self, dataset, verbose=0):
        return {"decision": LOGITS[:, None], "seg": np.zeros((len(LOGITS), 2, 2, 1), np.float32)}

    def save(self, path):
        Path(path).write_text("a model")


def _events(folder: Path) -> list:
    return [event for path in sorted(folder.glob("events.out.tfevents.*"))
            for event in tf.compat.v1.train.summary_iterator(str(path))]


def test_pr_curve_plugin_summaries_and_no_ap_for_unvalidated_epochs(tmp_path):
    images = np.random.default_rng(0).random((len(LABELS), 16, 16, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, LABELS, LABELS)).batch(4)
    callback = ValidateAP(dataset, LABELS, every=2, epochs=5, best_path=tmp_path / "best.keras", tracker={},
                          tb_dir=tmp_path / "tb")
    callback.set_model(FakeModel())
    logs = []
    for epoch in range(5):  # validated as published: epochs 0, 2 (every 2) and 4 (the last)
        logs.append({"loss": 1.0})
        callback.on_epoch_end(epoch, logs[-1])
    callback.writer.flush()
    expected = average_precision(LABELS, 1 / (1 + np.exp(-LOGITS.astype(np.float64))))
    assert "val_ap" not in logs[1] and "val_ap" not in logs[3]  # unvalidated: no NaN point in TensorBoard
    assert [logs[i]["val_ap"] for i in (0, 2, 4)] == pytest.approx([expected] * 3)
    assert (tmp_path / "best.keras").is_file()

    curves = [(e.step, v) for e in _events(tmp_path / "tb") for v in e.summary.value if v.tag == PR_CURVE_TAG]
    assert [step for step, _ in curves] == [0, 2, 4]
    value = curves[0][1]
    assert value.metadata.plugin_data.plugin_name == "pr_curves"
    data = tf.make_ndarray(value.tensor)  # rows: TP, FP, TN, FN, precision, recall at 201 thresholds
    assert data.shape == (6, 201)
    assert (data[0, 0], data[1, 0]) == (LABELS.sum(), (~LABELS).sum())  # threshold 0: everything positive
    assert data[5, 0] == 1.0 and data[0, -1] + data[3, -1] == LABELS.sum()
    overlays = {v.tag for e in _events(tmp_path / "tb") for v in e.summary.value}
    assert "validation/overlays" in overlays
