"""One shared test helper for every layer (modelled on Keras' own layer tests).

`run_layer_test` checks, for any layer class:
- config round trip (every constructor argument comes back from
  `get_config()`, `from_config` and Keras serialisation reproduce it);
- eager call on NumPy data, output shapes and `compute_output_shape`;
- symbolic call on `keras.Input` (unknown batch size);
- one training step inside a functional model (finite loss, weights move);
- a `.keras` save/load round trip in-process with equal outputs;
- mixed precision (`mixed_float16` and `mixed_bfloat16`): finite outputs.

`run_docstring_example` executes the ```python blocks of a docstring, so
that every layer's `Example:` keeps running.

Tensors are given as a list of positional call inputs plus a dict of tensor
keyword inputs (masks, ...); non-tensor keyword arguments go in
`call_kwargs`. Every one of them becomes a `keras.Input` in the functional
model, so masks travel through saved models too.
"""

import inspect
import os
import re
import tempfile

import keras
import numpy as np
from hypothesis import settings
from keras import ops


def _to_list(x):
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _as_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def _call(layer, positional, tensor_kwargs, call_kwargs, training=None):
    kwargs = dict(call_kwargs or {})
    kwargs.update(tensor_kwargs or {})
    if training is not None:
        kwargs["training"] = training
    return layer(*positional, **kwargs)


def _flatten(outputs):
    return keras.tree.flatten(outputs)


def _compare_config(kwargs, config, cls):
    for key, value in kwargs.items():
        assert key in config, (
            f"{cls.__name__}.get_config() lacks constructor argument {key!r}"
        )
        got = config[key]
        if isinstance(
            value,
            (
                keras.layers.Layer,
                keras.initializers.Initializer,
                keras.regularizers.Regularizer,
                keras.constraints.Constraint,
            ),
        ):
            continue
        if isinstance(value, (list, tuple)):
            assert list(got) == list(value), (key, got, value)
        elif isinstance(value, str) and isinstance(got, dict):
            # Initializers / activations given by name are serialised.
            continue
        else:
            assert got == value, (
                f"{cls.__name__}.get_config()[{key!r}] is {got!r}, "
                f"constructed with {value!r}"
            )


def check_config_round_trip(layer_cls, init_kwargs):
    """Every constructor argument round-trips through config/serialisation."""
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    _compare_config(init_kwargs, config, layer_cls)
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"].startswith("attention_zoo>"), (
        f"{layer_cls.__name__} is not registered in package 'attention_zoo'"
    )
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert type(deserialized) is layer_cls
    assert deserialized.get_config() == config
    return layer


def build_functional_model(
    layer, inputs, tensor_kwargs=None, call_kwargs=None, output_index=None
):
    """Wraps `layer` in a functional model whose inputs are all the tensors.

    Returns `(model, feed)` where `feed` is the list of arrays to call the
    model with, in the order of `model.inputs`.
    """
    positional = _to_list(inputs)
    tensor_kwargs = tensor_kwargs or {}
    sym_pos = [
        keras.Input(
            shape=np.shape(x)[1:], dtype=_dtype_of(x), name=f"input_{i}"
        )
        for i, x in enumerate(positional)
    ]
    sym_kw = {
        k: keras.Input(shape=np.shape(v)[1:], dtype=_dtype_of(v), name=k)
        for k, v in tensor_kwargs.items()
    }
    outputs = _call(layer, sym_pos, sym_kw, call_kwargs)
    if output_index is not None:
        outputs = _flatten(outputs)[output_index]
    model = keras.Model(inputs=sym_pos + list(sym_kw.values()), outputs=outputs)
    feed = positional + list(tensor_kwargs.values())
    return model, feed


def _dtype_of(x):
    x = np.asarray(x)
    if x.dtype == np.bool_:
        return "bool"
    if np.issubdtype(x.dtype, np.integer):
        return "int32"
    return "float32"


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    expected_output_shape=None,
    *,
    tensor_kwargs=None,
    call_kwargs=None,
    expected_num_trainable_weights=None,
    run_training_step=True,
    run_saving_test=True,
    run_mixed_precision=True,
    check_compute_output_shape=True,
    atol=1e-5,
    train_output_index=0,
):
    """Runs the shared battery of layer checks and returns the built layer.

    Args:
        layer_cls: the layer class under test.
        init_kwargs: constructor keyword arguments.
        inputs: one NumPy array or a list of arrays, passed positionally.
        expected_output_shape: shape tuple, or a list of shape tuples when the
            layer returns several tensors; checked eagerly and symbolically
            (batch size ignored symbolically).
        tensor_kwargs: dict of tensor keyword inputs (e.g. masks).
        call_kwargs: dict of non-tensor keyword arguments.
        expected_num_trainable_weights: checked after building when given.
        run_training_step: train one step in a functional model.
        run_saving_test: `.keras` save/load round trip with equal outputs.
        run_mixed_precision: call under `mixed_float16`/`mixed_bfloat16`.
        check_compute_output_shape: compare `compute_output_shape`.
        atol: tolerance of the save/load comparison.
        train_output_index: which (flattened) output the training step
            fits, e.g. a log-probability output whose gradient is the only
            one reaching some weights (REINFORCE). Defaults to the first.

    Returns:
        The layer instance built by the eager call.
    """
    positional = _to_list(inputs)
    tensor_kwargs = dict(tensor_kwargs or {})
    call_kwargs = dict(call_kwargs or {})

    # 1. Config round trip.
    check_config_round_trip(layer_cls, init_kwargs)

    # 2. Eager call.
    layer = layer_cls(**init_kwargs)
    outputs = _call(layer, positional, tensor_kwargs, call_kwargs)
    flat = _flatten(outputs)
    for out in flat:
        arr = _as_numpy(out)
        assert np.all(np.isfinite(arr.astype("float64"))), (
            f"{layer_cls.__name__} produced non-finite outputs"
        )
    if expected_output_shape is not None:
        shapes = (
            expected_output_shape
            if isinstance(expected_output_shape, list)
            else [expected_output_shape]
        )
        assert len(shapes) == len(flat), (
            f"expected {len(shapes)} outputs, got {len(flat)}"
        )
        for out, shape in zip(flat, shapes):
            assert tuple(out.shape) == tuple(shape), (
                f"output shape {tuple(out.shape)} != expected {shape}"
            )
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    # 3. compute_output_shape agrees with the eager result.
    if check_compute_output_shape and not call_kwargs.get(
        "return_attention_scores"
    ):
        shapes_in = [tuple(np.shape(x)) for x in positional]
        try:
            computed = layer.compute_output_shape(*shapes_in)
        except NotImplementedError as err:
            raise AssertionError(
                f"{layer_cls.__name__} lacks compute_output_shape"
            ) from err
        computed_flat = (
            [computed]
            if isinstance(computed[0], (int, type(None)))
            else list(computed)
        )
        for out, shape in zip(flat, computed_flat):
            assert tuple(out.shape) == tuple(shape), (
                f"compute_output_shape {tuple(shape)} != eager "
                f"{tuple(out.shape)}"
            )

    # 4. Symbolic call (functional model) matches the eager outputs.
    sym_layer = layer_cls(**init_kwargs)
    model, feed = build_functional_model(
        sym_layer, positional, tensor_kwargs, call_kwargs
    )
    model_out = _flatten(model(feed))
    for sym, out in zip(_flatten(model.outputs), model_out):
        assert tuple(sym.shape)[1:] == tuple(out.shape)[1:]

    # 5. One training step: finite loss, trainable weights move.
    if run_training_step:
        train_layer = layer_cls(**init_kwargs)
        train_model, feed = build_functional_model(
            train_layer,
            positional,
            tensor_kwargs,
            call_kwargs,
            output_index=train_output_index,
        )
        train_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        target = (
            np.random.default_rng(0)
            .normal(size=tuple(_as_numpy(train_model(feed)).shape))
            .astype("float32")
        )
        before = [_as_numpy(w).copy() for w in train_layer.trainable_weights]
        loss = train_model.train_on_batch(feed, target)
        assert np.isfinite(loss), f"training loss is {loss}"
        if before:
            after = [_as_numpy(w) for w in train_layer.trainable_weights]
            moved = [not np.allclose(a, b) for a, b in zip(before, after)]
            assert any(moved), (
                f"{layer_cls.__name__}: no trainable weight changed in one "
                "training step"
            )

    # 6. .keras save/load round trip with equal outputs.
    if run_saving_test:
        expected = [_as_numpy(o) for o in _flatten(model(feed))]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            reloaded = keras.saving.load_model(path)
        got = [_as_numpy(o) for o in _flatten(reloaded(feed))]
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, atol=atol, rtol=1e-5)

    # 7. Mixed precision: finite outputs, float32-safe softmax.
    if run_mixed_precision:
        for policy in ("mixed_float16", "mixed_bfloat16"):
            mp_layer = layer_cls(**{**init_kwargs, "dtype": policy})
            mp_out = _call(mp_layer, positional, tensor_kwargs, call_kwargs)
            for out in _flatten(mp_out):
                arr = _as_numpy(ops.cast(out, "float32"))
                assert np.all(np.isfinite(arr)), (
                    f"{layer_cls.__name__} under {policy} produced "
                    "non-finite outputs"
                )
    return layer


def set_layer_weights(layer, arrays):
    """Assigns `arrays` to `layer.weights` in order (for numeric tests)."""
    assert len(arrays) == len(layer.weights), (
        f"{len(arrays)} arrays for {len(layer.weights)} weights: "
        f"{[w.path for w in layer.weights]}"
    )
    for weight, value in zip(layer.weights, arrays):
        weight.assign(np.asarray(value, dtype=weight.dtype))


def run_docstring_example(obj):
    """Executes every ```python block of `obj`'s docstring in a fresh scope.

    Docstring examples must run; this catches examples that rot.
    """
    doc = inspect.getdoc(obj) or ""
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert blocks, f"{obj.__qualname__} has no ```python example"
    for i, block in enumerate(blocks):
        code = compile(block, f"<{obj.__qualname__} example {i}>", "exec")
        exec(code, {"__name__": f"example_{obj.__qualname__}"})


def check_block_in_small_cnn(
    block, image_shape=(8, 8, 3), filters=8, atol=1e-6, seed=0
):
    """Checks an image block inside `Conv2D -> block -> GAP -> Dense`.

    The model trains one step (finite loss) and survives an in-process
    `.keras` save/load with equal outputs. A block with
    `data_format="channels_first"` gets `Permute` layers around it, so the
    rest of the model stays channels_last. Returns the trained model.
    """
    data_format = getattr(block, "data_format", "channels_last")
    inputs = keras.Input(image_shape, name="images")
    x = keras.layers.Conv2D(
        filters, 3, padding="same", activation="relu", name="stem"
    )(inputs)
    if data_format == "channels_first":
        x = keras.layers.Permute((3, 1, 2), name="to_nchw")(x)
    x = block(x)
    if data_format == "channels_first":
        x = keras.layers.Permute((2, 3, 1), name="to_nhwc")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(4, *image_shape)).astype("float32")
    labels = rng.integers(0, 3, size=(4,))
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss), f"training loss is {loss}"
    expected = _as_numpy(model(images))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cnn.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _as_numpy(reloaded(images)), expected, atol=atol, rtol=1e-5
    )
    return model


def compute_gradients(fn, arrays):
    """Gradients of `sum(fn(*arrays))` w.r.t. `arrays`, on any backend.

    `fn` maps backend tensors to one tensor (or a tuple: all are summed).
    Returns a list of NumPy arrays.
    """
    arrays = [np.asarray(a, dtype="float32") for a in arrays]

    def total(*args):
        out = fn(*args)
        return sum(ops.sum(o) for o in _flatten(out))

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            loss = total(*tensors)
        return [_as_numpy(g) for g in tape.gradient(loss, tensors)]
    if backend == "jax":
        import jax

        # One compiled program: much faster than JAX's op-by-op eager mode
        # for loops (each eager `fori_loop` call compiles its body anew).
        grad_fn = jax.jit(jax.grad(total, argnums=tuple(range(len(arrays)))))
        return [np.asarray(g) for g in grad_fn(*arrays)]
    raise NotImplementedError(f"compute_gradients: backend {backend}")


def layer_gradients(layer, fn):
    """Gradients of `sum(fn())` w.r.t. `layer.trainable_variables`.

    `fn` calls `layer` (already built) and returns a tensor or a tuple of
    tensors (all summed). Returns a list of NumPy arrays in the order of
    `layer.trainable_variables`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = sum(ops.sum(o) for o in _flatten(fn()))
        grads = tape.gradient(loss, layer.trainable_variables)
        return [
            np.zeros(v.shape, "float32") if g is None else _as_numpy(g)
            for v, g in zip(layer.trainable_variables, grads)
        ]
    if backend == "jax":
        import jax

        variables = layer.trainable_variables
        originals = [v.value for v in variables]

        def total(values):
            # Swap the variables' values for the traced ones (keras' JAX
            # StatelessScope), so `fn` can call the layer as usual.
            with keras.StatelessScope(
                state_mapping=list(zip(variables, values))
            ):
                return sum(ops.sum(o) for o in _flatten(fn()))

        grads = jax.jit(jax.grad(total))(originals)
        return [np.asarray(g) for g in grads]
    raise NotImplementedError(f"layer_gradients: backend {backend}")


def property_settings(max_examples):
    """Hypothesis settings for a property test: `max_examples` examples
    under TensorFlow, a third of them (at least 5) under a second backend.

    JAX compiles an eager op for every new input shape, so each random
    shape costs seconds there; the TensorFlow run covers the full sample
    with the same layer code, and the second backend still checks the
    property on several shapes.
    """
    if keras.backend.backend() != "tensorflow":
        max_examples = max(5, max_examples // 3)
    return settings(max_examples=max_examples, deadline=None)
