"""Token accuracy that ignores padding, for teacher-forced sequence
generators (translators, captioners)."""

import keras
from keras import ops

from zoo.tokens import PAD_ID


@keras.saving.register_keras_serializable(package="attention_zoo")
class MaskedAccuracy(keras.metrics.Metric):
    """Accuracy of the argmax token over the non-padding target positions.

    Args:
        pad_id: target id that marks padding (ignored).
        name: metric name.
        dtype: metric dtype.
    """

    def __init__(self, pad_id=PAD_ID, name="masked_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = pad_id
        self.correct = self.add_variable(
            (), initializer="zeros", name="correct"
        )
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        valid = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        if sample_weight is not None:
            valid = valid * ops.cast(sample_weight, "float32")
        hits = ops.cast(ops.equal(predicted, y_true), "float32") * valid
        self.correct.assign_add(ops.sum(hits))
        self.total.assign_add(ops.sum(valid))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def get_config(self):
        return {"pad_id": self.pad_id, "name": self.name, "dtype": self.dtype}
