"""Base of the score layers with learned weights (general, location,
additive): their kernel initializer and regularizer in one place."""

import keras

from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.scores.score import Score


class LearnedScore(Score):
    """Base of the scores with learned weights (not registered itself).

    Holds the `kernel_initializer` and `kernel_regularizer` every such score
    takes, makes its weights with `add_kernel` (each from its own clone of
    the initializer) and serialises both after the subclass's own arguments
    (`score_args`). Subclasses build their weights in `build` and state
    their other arguments in `score_args`.

    Args:
        kernel_initializer: initializer of the learned weights.
        kernel_regularizer: optional regularizer of the learned weights.
        **kwargs: base layer arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def add_kernel(self, name, shape):
        """A weight of `shape`, initialised from a fresh clone of
        `kernel_initializer` and regularised by `kernel_regularizer`."""
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )

    def score_args(self):
        """The subclass's own constructor arguments, for `get_config`."""
        return {}

    def get_config(self):
        config = {
            **self.score_args(),
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
