"""TensorBoard scalar logs written with TensorFlow alone.

`keras.callbacks.TensorBoard` needs the `tensorboard` package just to write
scalars (`tf.summary.scalar` lives there). This callback writes the same
event files with TensorFlow's core `tf.summary.write` and the scalar
plugin's metadata, so runs log for TensorBoard whether or not it is
installed (`pip install tensorboard` to view them). Layout as Keras':
`<log_dir>/train` and `<log_dir>/validation`, tags `epoch_<metric>`.
"""

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _scalar_metadata():
    # What tensorboard.plugins.scalar writes: plugin "scalars", no content.
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="scalars"
        )
    ).SerializeToString()


class ScalarLogger(keras.callbacks.Callback):
    """Logs every epoch's metrics and learning rate as TensorBoard scalars.

    Args:
        log_dir: folder of the event files.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writers = {}
        self._metadata = _scalar_metadata()

    def _writer(self, split):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(
                f"{self.log_dir}/{split}"
            )
        return self._writers[split]

    def _write(self, split, tag, value, step):
        with self._writer(split).as_default():
            tf.summary.write(
                tag,
                tf.constant(float(value), tf.float32),
                step=step,
                metadata=self._metadata,
            )

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if key.startswith("val_"):
                self._write("validation", f"epoch_{key[4:]}", value, epoch)
            else:
                self._write("train", f"epoch_{key}", value, epoch)
        lr = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        self._write("train", "epoch_learning_rate", lr, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
