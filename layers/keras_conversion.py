"""Moving weights between `keras.layers.MultiHeadAttention` and ours.

Keras keeps one `EinsumDense` per projection, with kernels `[D, N, H]`
(query, key, value, gate) and `[N, Hv, *output_shape]` (output). This
project's `MultiHeadAttention` keeps flat kernels: one fused `qkv_kernel
[D, N*H + N*H + N*Hv]` when query, key and value have the same width
(separate `query_kernel`, `key_kernel`, `value_kernel` otherwise), a
`gate_kernel [D, N*Hv]` and an `output_kernel [N*Hv, prod(output_shape)]`.
The two functions here reshape one layout into the other; the layers then
compute the same outputs and scores (to float rounding).
"""

import keras
import numpy as np

# Constructor arguments the two layers share, with the same meaning.
SHARED_ARGUMENTS = (
    "num_heads",
    "key_dim",
    "value_dim",
    "dropout",
    "use_bias",
    "output_shape",
    "attention_axes",
    "sliding_window",
    "use_gate",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
    "seed",
)


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _keras_projections(keras_layer):
    """`{name: (kernel, bias)}` variables of a built Keras layer."""
    projections = {
        "query": keras_layer.query_dense,
        "key": keras_layer.key_dense,
        "value": keras_layer.value_dense,
        "output": keras_layer.output_dense,
    }
    out = {
        name: (dense.kernel, dense.bias) for name, dense in projections.items()
    }
    # The gate has no public accessor: found by its sublayer name.
    gate = {
        v.path.rsplit("/", 1)[-1]: v
        for v in keras_layer.weights
        if v.path.rsplit("/", 2)[-2:-1] == ["gate"]
    }
    if "kernel" in gate:
        out["gate"] = (gate["kernel"], gate.get("bias"))
    return out


def from_keras(cls, keras_layer, **overrides):
    """A built `cls` (our `MultiHeadAttention`) equal to `keras_layer`.

    Args:
        cls: the class to build (`layers.MultiHeadAttention` or a subclass).
        keras_layer: a built, unquantised `keras.layers.MultiHeadAttention`
            (call it once to build it). LoRA adapters are merged in.
        **overrides: constructor arguments to set or change (e.g.
            `attention_impl="chunked"`, `name="mha"`).

    Returns:
        A built layer whose outputs and scores equal `keras_layer`'s.
    """
    if not isinstance(keras_layer, keras.layers.MultiHeadAttention):
        raise ValueError(
            "`from_keras` expects a keras.layers.MultiHeadAttention. "
            f"Received: layer={keras_layer!r}"
        )
    if not keras_layer.built:
        raise ValueError(
            "`from_keras` needs a built Keras layer (call it once first). "
            f"Received: an unbuilt layer {keras_layer.name!r}"
        )
    if keras_layer.query_dense.quantization_mode is not None:
        raise ValueError(
            "`from_keras` converts float weights: convert the Keras layer "
            "before quantising it, then quantise ours. Received: a layer "
            f"quantised to {keras_layer.query_dense.quantization_mode!r}"
        )
    config = keras_layer.get_config()
    kwargs = {k: config[k] for k in SHARED_ARGUMENTS if k in config}
    if kwargs.get("output_shape") is not None:
        kwargs["output_shape"] = tuple(kwargs["output_shape"])
    kwargs.update(name=config["name"], dtype=keras_layer.dtype_policy)
    kwargs.update(overrides)
    layer = cls(**kwargs)
    variables = _keras_projections(keras_layer)
    dims = {name: int(variables[name][0].shape[0]) for name in variables}
    # Built Keras layers hold positive attention axes; the inputs have at
    # least one more axis (the features).
    axes = config.get("attention_axes") or (1,)
    lead = (None,) * max(2, max(axes) + 1)
    layer.build(
        lead + (dims["query"],),
        lead + (dims["value"],),
        lead + (dims["key"],),
    )
    weights = {}
    for name, (kernel, bias) in variables.items():
        kernel = _numpy(kernel)
        if name == "output":  # [N, Hv, *output_shape]
            kernel = kernel.reshape(
                kernel.shape[0] * kernel.shape[1],
                int(np.prod(kernel.shape[2:])),
            )
        else:  # [D, N, H]
            kernel = kernel.reshape(kernel.shape[0], -1)
        bias = None if bias is None else _numpy(bias).ravel()
        weights[name] = (kernel, bias)
    layer.load_projection_weights(weights)
    return layer


def to_keras(layer):
    """A built `keras.layers.MultiHeadAttention` equal to `layer`.

    Only for what Keras has: ordinary multi-head attention
    (`num_key_value_heads` unset or equal to `num_heads`), unquantised.
    LoRA adapters are merged in.
    """
    if layer.num_key_value_heads not in (None, layer.num_heads):
        raise ValueError(
            "keras.layers.MultiHeadAttention has no grouped-query attention. "
            f"Received: num_key_value_heads={layer.num_key_value_heads} with "
            f"num_heads={layer.num_heads}"
        )
    if not layer.built:
        raise ValueError(
            "`to_keras` needs a built layer (call it once first). "
            f"Received: an unbuilt layer {layer.name!r}"
        )
    config = layer.get_config()
    kwargs = {k: config[k] for k in SHARED_ARGUMENTS if k in config}
    keras_layer = keras.layers.MultiHeadAttention(
        name=layer.name, dtype=layer.dtype_policy.name, **kwargs
    )
    weights = layer.projection_weights()
    dims = {name: weights[name][0].shape[0] for name in weights}
    keras_layer.build(
        (None, None, dims["query"]),
        (None, None, dims["value"]),
        (None, None, dims["key"]),
    )
    variables = _keras_projections(keras_layer)
    for name, (kernel, bias) in weights.items():
        kernel_variable, bias_variable = variables[name]
        kernel_variable.assign(kernel.reshape(kernel_variable.shape))
        if bias is not None:
            bias_variable.assign(bias.reshape(bias_variable.shape))
    return keras_layer
