"""The static-shape key/value cache of `MultiHeadAttention` (decoding).

The keras-hub layout `[B, 2, S_max, K, H]` (keys at index 0 and values at
index 1 of axis 1): self-attention steps write the new tokens' keys and
values at `cache_update_index` and attend over every written slot;
cross-attention reuses keys and values projected once from the encoder
output. Shapes stay static, so a decoding loop compiles once (a TensorFlow
graph-mode while loop, `jax.jit`).
"""

import dataclasses

from keras import ops

from layers.attention_layout import dim_sizes


class KeyValueCacheMixin:
    """The decoding cache of `MultiHeadAttention` (a mixin).

    Uses the layer's projections (`_project_query`, `_project_qkv`,
    `_project_key_value`) and `_attention_output`.
    """

    def initialize_cache(self, batch_size, max_length, dtype=None):
        """Returns an all-zero key/value cache `[B, 2, max_length, K, H]`.

        Args:
            batch_size: int or scalar tensor.
            max_length: int, number of cache slots (maximum decoded length).
            dtype: cache dtype; defaults to the layer's compute dtype.
        """
        self._check_cacheable()
        return ops.zeros(
            (batch_size, 2, max_length, self._kv_heads, self.key_dim),
            dtype=dtype or self.compute_dtype,
        )

    def compute_key_value_cache(self, value, key=None):
        """Projects `value` (and `key`) once into a `[B, 2, S, K, H]` cache.

        For cross-attention in a decoder: call once on the encoder output,
        then pass the result as `cache=` (without `cache_update_index`) at
        every decoding step. The layer must be built.
        """
        self._check_cacheable()
        if not self.built:
            raise ValueError(
                "`compute_key_value_cache` needs a built layer; call it once "
                "(e.g. inside the model) first. Received: an unbuilt layer."
            )
        k, v = self._project_kv(value, key)
        return ops.stack([k, v], axis=1)

    def _check_cacheable(self):
        if self._head_value_dim != self.key_dim:
            raise ValueError(
                "The key/value cache stores keys and values in one tensor and "
                "needs `value_dim == key_dim`. Received: "
                f"key_dim={self.key_dim}, value_dim={self.value_dim}"
            )

    def _call_cached(
        self,
        query,
        value,
        key,
        masks,
        cache,
        index,
        training=None,
        return_scores=False,
    ):
        """Attention over a key/value cache (see the class docstring).

        `masks` index the cache slots: `value_mask [B, S_max]`,
        `attention_mask [B, T, S_max]`. Returns `(output, cache)` or
        `(output, scores, cache)`.
        """
        self._check_cacheable()
        if len(query.shape) != 3:
            raise ValueError(
                "The cache supports 3-D inputs [batch, length, features] "
                f"only. Received: query.shape={tuple(query.shape)}"
            )
        expected = (self._kv_heads, self.key_dim)
        if (
            len(cache.shape) != 5
            or cache.shape[1] != 2
            or (tuple(cache.shape[3:]) != expected)
        ):
            raise ValueError(
                "`cache` must have shape [batch, 2, max_length, "
                f"{expected[0]}, {expected[1]}]. "
                f"Received: cache.shape={tuple(cache.shape)}"
            )
        if not self.built:
            value_shape = None if value is None else tuple(value.shape)
            key_shape = None if key is None else tuple(key.shape)
            self.build(tuple(query.shape), value_shape, key_shape)
        if index is None:
            # Precomputed (cross-attention) keys/values: used as they are.
            q = self._project_query(query)
            keys, values = cache[:, 0], cache[:, 1]
            slots = None
            offset = 0
        else:
            if value is None:
                raise ValueError(
                    "A cache update needs the new tokens as `value`. "
                    "Received: value=None with cache_update_index="
                    f"{index}"
                )
            if value is query and key is None:
                q, k, v = self._project_qkv(query, value, None, True)
            else:
                q = self._project_query(query)
                k, v = self._project_kv(value, key)
            t_new = dim_sizes(value, (1,))[0]
            k = ops.reshape(k, (-1, t_new, self._kv_heads, self.key_dim))
            v = ops.reshape(v, (-1, t_new, self._kv_heads, self.key_dim))
            update = ops.cast(ops.stack([k, v], axis=1), cache.dtype)
            cache = ops.slice_update(cache, (0, 0, index, 0, 0), update)
            keys, values = cache[:, 0], cache[:, 1]
            s_max = dim_sizes(cache, (2,))[0]
            # Slots not written yet (>= index + t_new) are never attended.
            slots = ops.expand_dims(
                ops.less(ops.arange(s_max), index + t_new), 0
            )
            offset = index
        s_len = dim_sizes(keys, (1,))[0]
        k_flat = ops.reshape(
            ops.cast(keys, self.compute_dtype),
            (-1, s_len, self._kv_heads * self.key_dim),
        )
        v_flat = ops.reshape(
            ops.cast(values, self.compute_dtype),
            (-1, s_len, self._kv_heads * self.key_dim),
        )
        masks = dataclasses.replace(
            masks, causal_offset=offset, key_slots=slots
        )
        gate = self._gate(query) if self.use_gate else None
        output, scores = self._attention_output(
            q, k_flat, v_flat, masks, training, return_scores, gate
        )
        if self._output_shape and len(self._output_shape) > 1:
            output = ops.reshape(
                output, (-1, ops.shape(output)[1], *self._output_shape)
            )
        if return_scores:
            return output, scores, cache
        return output, cache
