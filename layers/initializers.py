"""Weight arguments of the layers: initializer cloning (every weight of a
layer gets its own initializer) and their serialisation for `get_config`.

A Keras 3 initializer made without a seed draws its seed once, when it is
constructed, so calling one instance twice with the same shape returns the
same values. A layer that initialised its query and key kernels (or the
blocks of a fused kernel) from one instance would start with them equal.
Every layer in this package therefore clones its initializers per weight,
as `keras.layers.MultiHeadAttention` does.

Example:

>>> import keras
>>> from layers.initializers import clone_initializer
>>> init = keras.initializers.GlorotUniform()
>>> a = clone_initializer(init)((4, 4))
>>> b = clone_initializer(init)((4, 4))
>>> bool(keras.ops.all(a == b))
False
"""

import keras


def clone_initializer(initializer):
    """A fresh copy of `initializer` (an instance, name or config).

    A seedless copy draws its own seed; an initializer given an explicit
    seed keeps it (its copies agree, as the user asked).
    """
    initializer = keras.initializers.get(initializer)
    if initializer is None:
        return None
    return keras.initializers.get(keras.initializers.serialize(initializer))


# The Keras serializer of each kind of weight argument, by name suffix.
_SERIALIZERS = {
    "initializer": keras.initializers.serialize,
    "regularizer": keras.regularizers.serialize,
    "constraint": keras.constraints.serialize,
}


def serialize_weight_args(layer, *names):
    """Config entries of a layer's weight arguments, for `get_config`.

    Args:
        layer: the layer holding each argument as an attribute of the same
            name.
        *names: the arguments, e.g. `"kernel_initializer"`; each name ends
            in `_initializer`, `_regularizer` or `_constraint`, which picks
            the Keras serializer.

    Returns:
        `{name: serialized value}`.
    """
    return {
        name: _SERIALIZERS[name.rsplit("_", 1)[-1]](getattr(layer, name))
        for name in names
    }
