"""The sequence-generation task tier: what translation and captioning share.

A `Seq2SeqTask` trains a `zoo.SequenceGenerator` with teacher forcing
(`({"...", "target_in"}, target_out)` batches, 0 = padding), evaluates it
with both searches of `zoo.decoding` and exports both searches as the two
signatures of one SavedModel. It owns the setting checks, the padded
cross-entropy (label smoothing optional) and masked accuracy, building
the model, the sample files and the export; a subclass supplies its data
(`load_data`, `model_defaults`), its evaluation and its serving function.
"""

import os
import typing

import tensorflow as tf

from experiments import export as export_lib
from experiments.configs.seq2seq import SEARCHES
from experiments.errors import UserError
from experiments.rundir import write_json
from experiments.rundir import write_text
from experiments.tasks.base import Task
from zoo.metrics import MaskedAccuracy
from zoo.metrics import MaskedSparseCrossentropy
from zoo.tokens import PAD_ID


class Seq2SeqTask(Task):
    """Base of the tasks whose model generates token sequences.

    Subclasses set `length_keys` (the data-config fields holding maximum
    sequence lengths, `[START]` and `[END]` included) and `sample_noun`
    (what `samples.md` lists: "translations", "captions"), and may add
    checks in `check_data_settings`.
    """

    length_keys = ()
    sample_noun = "samples"

    # --- Validation, before any data is read ---------------------------
    def check_settings(self, config):
        cfg, ev = config.data, config.eval
        for key in self.length_keys:
            value = getattr(cfg, key)
            if value < 3:
                raise UserError(
                    f"data.{key} must be >= 3 ([START], a token, [END]). "
                    f"Received: data.{key}={value}"
                )
        self.check_data_settings(config)
        if ev.beam_width < 1:
            raise UserError(
                "eval.beam_width must be >= 1. Received: "
                f"eval.beam_width={ev.beam_width}"
            )
        if ev.length_penalty < 0:
            raise UserError(
                "eval.length_penalty must be >= 0. Received: "
                f"eval.length_penalty={ev.length_penalty}"
            )
        if ev.export_search not in SEARCHES:
            raise UserError(
                f"Unknown eval.export_search {ev.export_search!r}. Choose "
                f"one of: {', '.join(SEARCHES)}"
            )

    def check_data_settings(self, config):
        """The subclass's own data-setting checks (none by default)."""

    # --- Model ----------------------------------------------------------
    def loss(self, config):
        return MaskedSparseCrossentropy(
            label_smoothing=config.train.label_smoothing, pad_id=PAD_ID
        )

    def metrics(self, config, data):
        return [MaskedAccuracy(name="accuracy")]

    # --- Evaluation -----------------------------------------------------
    def write_samples(self, samples, fields, data, config, run_dir):
        """`samples.json` and `samples.md` in `run_dir`.

        Args:
            samples: list of dicts (written to `samples.json` as they are).
            fields: `(label, key)` pairs: the lines of each sample in
                `samples.md`, in order (list values joined by " | ").
        """
        write_json(os.path.join(run_dir, "samples.json"), samples)
        lines = [
            f"# Sample {self.sample_noun}: {config.model.name} on "
            f"{data.info['dataset']} ({config.data.test_split})",
            "",
        ]
        for i, sample in enumerate(samples, start=1):
            for j, (label, key) in enumerate(fields):
                value = sample[key]
                if isinstance(value, list):
                    value = " | ".join(value)
                prefix = f"{i}. " if j == 0 else "   "
                end = "" if j == len(fields) - 1 else "  "
                lines.append(f"{prefix}**{label}:** {value}{end}")
            lines.append("")
        write_text(os.path.join(run_dir, "samples.md"), "\n".join(lines))


class Search(typing.NamedTuple):
    """How a serving function decodes: one search and its settings.

    Attributes:
        method: `"greedy"` or `"beam"`.
        max_length: maximum number of produced tokens.
        beam_width: beams per example (beam search).
        length_penalty: GNMT alpha (beam search).
    """

    method: str
    max_length: int
    beam_width: int
    length_penalty: float

    def best(self, model, inputs):
        """`model.generate(inputs, ...).best()`: `[B, ...]` results."""
        return model.generate(
            inputs,
            method=self.method,
            max_length=self.max_length,
            beam_width=self.beam_width,
            length_penalty=self.length_penalty,
        ).best()


def serve_nonempty(inputs, placeholder, serve):
    """`serve(inputs)` (a dict of `[B, ...]` outputs) for any batch size.

    Recurrent layers cannot step over zero examples: an empty batch runs
    `placeholder` (a batch of one) instead, and every output is cut back
    to the real batch size.
    """
    batch = tf.shape(inputs)[0]
    inputs = tf.cond(batch > 0, lambda: inputs, lambda: placeholder)
    return {key: value[:batch] for key, value in serve(inputs).items()}


def export_searches(path, model, serving_fn, search, track=()):
    """Exports one serving function per search, atomically.

    Args:
        path: destination folder of the SavedModel.
        model: the `zoo.SequenceGenerator` the functions decode with.
        serving_fn: `Search -> tf.function` (with an input signature).
        search: the `Search` of `serving_default`; the other method of
            `SEARCHES`, with the same settings, is a second signature
            named after it.
        track: further objects the functions use (tokenisers, lookup
            tables), saved with the model.

    Returns:
        `path`.
    """
    fns = {
        method: serving_fn(search._replace(method=method))
        for method in SEARCHES
    }
    other = next(method for method in SEARCHES if method != search.method)
    return export_lib.export_saved_model(
        path,
        model,
        fns[search.method],
        extra_endpoints={other: fns[other]},
        track=track,
    )
