"""The axis layout of attention over N-D inputs (e.g. images, videos).

`MultiHeadAttention` with inputs `[B, *axes, D]` (as
`keras.layers.MultiHeadAttention` with `attention_axes`) attends jointly over
the attention axes and treats the other axes between batch and features as
extra batch axes. It flattens the problem to the 3-D one,
`[B * others, prod(attention axes), D]`, computes there, and restores the
layout of the outputs and scores. `AxisLayout` holds that bookkeeping.
"""

import dataclasses

from keras import ops

from layers.masking import check_mask_shape


def dim_sizes(x, axes):
    """Sizes of `x` along `axes`: static ints where known, else tensors."""
    dynamic = None
    sizes = []
    for axis in axes:
        size = x.shape[axis]
        if size is None:
            if dynamic is None:
                dynamic = ops.shape(x)
            size = dynamic[axis]
        sizes.append(size)
    return tuple(sizes)


def product(values):
    """Product of ints and scalar tensors; an int when all are static."""
    out = 1
    for v in values:
        out = out * v
    return out


def attention_axes_of(attention_axes, rank):
    """The sorted positive attention axes of rank-`rank` inputs.

    `None` means every axis between the batch and the feature axis.
    """
    if attention_axes is None:
        return tuple(range(1, rank - 1))
    axes = []
    for axis in attention_axes:
        positive = axis % rank if -rank <= axis < rank else None
        if positive is None or not 1 <= positive <= rank - 2:
            raise ValueError(
                "`attention_axes` must index axes between the batch and "
                f"the feature axis of rank-{rank} inputs. Received: "
                f"attention_axes={attention_axes}"
            )
        axes.append(positive)
    return tuple(sorted(set(axes)))


def align_attention_mask(mask, rank, attention_axes, num_heads):
    """An `attention_mask` in the layout of the scores, as Keras reads it.

    The scores of rank-`rank` inputs are `[B, *others, N, *q axes, *k axes]`.
    Like `keras.layers.MultiHeadAttention`, a mask of lower rank gets size-1
    axes inserted at the head position until it has that rank, so `[T, S]`,
    `[B, T, S]` and per-head `[B, N, T, S]` masks (3-D inputs) all work,
    and size-1 axes broadcast.

    Returns:
        The mask without its head axis when that axis has size 1 (shape
        `[B, *others, *q axes, *k axes]`), else with it (a per-head mask).
    """
    num_axes = len(attention_axes_of(attention_axes, rank))
    scores_rank = rank + num_axes
    head_axis = -2 * num_axes - 1  # counted from the end, as Keras does
    shape = tuple(mask.shape)
    if len(shape) > scores_rank:
        raise ValueError(
            f"`attention_mask` must have rank <= {scores_rank} (broadcastable "
            f"to the scores [B, *other axes, {num_heads} heads, *query axes, "
            f"*key axes]). Received: attention_mask.shape={shape}"
        )
    mask = ops.cast(mask, "bool")
    for _ in range(scores_rank - len(shape)):
        mask = ops.expand_dims(mask, head_axis)
    heads = mask.shape[head_axis]
    if heads == 1:
        return ops.squeeze(mask, head_axis)
    if heads != num_heads:
        raise ValueError(
            f"A per-head `attention_mask` needs {num_heads} (num_heads) or 1 "
            f"on its head axis (axis {scores_rank + head_axis} of the "
            "scores). Received: "
            f"attention_mask.shape={shape}"
        )
    return mask


@dataclasses.dataclass(frozen=True)
class AxisLayout:
    """How N-D inputs map onto the 3-D attention problem.

    Attributes:
        rank: rank of the inputs.
        axes: the attention axes (positive, sorted).
        others: the non-attention axes between batch and features.
        query_sizes: the query's sizes along `axes` (ints or tensors).
        key_sizes: the key/value's sizes along `axes`.
        other_sizes: the query's sizes along `others`.
    """

    rank: int
    axes: tuple
    others: tuple
    query_sizes: tuple
    key_sizes: tuple
    other_sizes: tuple

    @classmethod
    def of(cls, query, value, attention_axes):
        """The layout of `query [B, ..., D]` attending to `value`."""
        rank = len(query.shape)
        axes = attention_axes_of(attention_axes, rank)
        others = tuple(a for a in range(1, rank - 1) if a not in axes)
        return cls(
            rank=rank,
            axes=axes,
            others=others,
            query_sizes=dim_sizes(query, axes),
            key_sizes=dim_sizes(value, axes),
            other_sizes=dim_sizes(query, others),
        )

    @property
    def permutation(self):
        """Transpose bringing the attention axes next to the features."""
        return (0, *self.others, *self.axes, self.rank - 1)

    def flatten_query(self, x):
        """`[B, ..., D]` -> `[B * others, prod(query axes), D]`."""
        return self._flatten(x, self.query_sizes)

    def flatten_key(self, x):
        """`[B, ..., D]` -> `[B * others, prod(key axes), D]`."""
        return self._flatten(x, self.key_sizes)

    def _flatten(self, x, sizes):
        x = ops.transpose(x, self.permutation)
        return ops.reshape(x, (-1, product(sizes), x.shape[-1]))

    def flatten_masks(self, query, value, masks, num_heads):
        """The N-D `masks` of `query`/`value` in the flattened layout.

        A per-head attention mask `[B, *others, N, *q axes, *k axes]` (see
        `align_attention_mask`) becomes `[B * others, N, T, S]`, any other
        `[B * others, T, S]`.
        """
        q_shape, v_shape = tuple(query.shape), tuple(value.shape)
        src = f"query.shape={q_shape} and value.shape={v_shape}"
        perm = self.permutation[:-1]
        qm, vm, am = masks.query_mask, masks.value_mask, masks.attention_mask
        if qm is not None:
            check_mask_shape("query_mask", qm, q_shape[:-1], src)
            qm = ops.transpose(ops.cast(qm, "bool"), perm)
            qm = ops.reshape(qm, (-1, product(self.query_sizes)))
        if vm is not None:
            check_mask_shape("value_mask", vm, v_shape[:-1], src)
            vm = ops.transpose(ops.cast(vm, "bool"), perm)
            vm = ops.reshape(vm, (-1, product(self.key_sizes)))
        if am is not None:
            per_head = len(am.shape) == self.rank + len(self.axes)
            heads = (num_heads,) if per_head else ()
            expected = (
                q_shape[0],
                *(q_shape[a] for a in self.others),
                *heads,
                *(q_shape[a] for a in self.axes),
                *(v_shape[a] for a in self.axes),
            )
            check_mask_shape("attention_mask", am, expected, src)
            am = ops.broadcast_to(
                ops.cast(am, "bool"),
                (
                    ops.shape(query)[0],
                    *self.other_sizes,
                    *heads,
                    *self.query_sizes,
                    *self.key_sizes,
                ),
            )
            am = ops.reshape(
                am,
                (
                    -1,
                    *heads,
                    product(self.query_sizes),
                    product(self.key_sizes),
                ),
            )
        return dataclasses.replace(
            masks, query_mask=qm, value_mask=vm, attention_mask=am
        )

    def unflatten_output(self, output, trailing):
        """`[B * others, T, prod(trailing)]` -> `[B, ..., *trailing]` in the
        inputs' axis order."""
        output = ops.reshape(
            output, (-1, *self.other_sizes, *self.query_sizes, *trailing)
        )
        # Undo the transpose of the non-feature axes.
        inverse = [0] * (self.rank - 1)
        for position, axis in enumerate(self.permutation[:-1]):
            inverse[axis] = position
        extra = tuple(range(self.rank - 1, self.rank - 1 + len(trailing)))
        return ops.transpose(output, (*inverse, *extra))

    def unflatten_scores(self, scores, num_heads):
        """`[B * others, N, T, S]` -> `[B, *others, N, *q axes, *k axes]`."""
        return ops.reshape(
            scores,
            (
                -1,
                *self.other_sizes,
                num_heads,
                *self.query_sizes,
                *self.key_sizes,
            ),
        )

    @staticmethod
    def scores_shape(query_shape, value_shape, num_heads, attention_axes):
        """The static shape of the scores of N-D inputs."""
        rank = len(query_shape)
        axes = attention_axes_of(attention_axes, rank)
        others = [a for a in range(1, rank - 1) if a not in axes]
        return (
            query_shape[0],
            *(query_shape[a] for a in others),
            num_heads,
            *(query_shape[a] for a in axes),
            *(value_shape[a] for a in axes),
        )
