"""Image classification task: TFDS images -> zoo model -> report -> SavedModel.

Data: any TFDS dataset with an image feature and a `ClassLabel` (official
names, `experiments/datasets` builders, or a prepared dataset directory).
Pipeline: decode -> cache -> shuffle -> augment (random crop of the
zero-padded image, horizontal flip) -> batch -> prefetch. Evaluation: top-1
and top-5 accuracy, scikit-learn's classification report, a confusion
matrix and attention maps. Export: uint8 images in -> probabilities and
label names out.
"""

import functools
import os

import keras
import numpy as np
import tensorflow as tf

import zoo
from experiments import batched_random
from experiments import data as data_lib
from experiments import export as export_lib
from experiments import plots
from experiments.configs.image_classification import AUGMENTATIONS
from experiments.errors import UserError
from experiments.tasks.base import TaskData
from experiments.tasks.base import check_split_size
from experiments.tasks.base import pick_examples
from experiments.tasks.classification import ClassificationTask
from experiments.tasks.classification import label_names
from experiments.tasks.classification import label_outputs

AUTOTUNE = tf.data.AUTOTUNE
# Prefixes of the attention variants of a zoo ResNet name.
ATTENTION_PREFIXES = ("se_", "cbam_", "eca_", "nonlocal_")


def _image_shape(builder, cfg):
    feature = builder.info.features[cfg.image_key]
    shape = tuple(getattr(feature, "shape", ()) or ())
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise UserError(
            f"Feature {cfg.image_key!r} of {builder.info.full_name!r} is not "
            f"an image (shape {shape}). Set data.image_key to its image "
            "feature."
        )
    if cfg.image_size:
        if len(cfg.image_size) != 2 or min(cfg.image_size) <= 0:
            raise UserError(
                "data.image_size must be [height, width]. Received: "
                f"data.image_size={cfg.image_size!r}"
            )
        return (int(cfg.image_size[0]), int(cfg.image_size[1]), shape[2])
    if None in shape:
        raise UserError(
            f"Images of {builder.info.full_name!r} vary in size {shape}: set "
            "data.image_size=[height,width] to resize them."
        )
    return shape


def default_models(model_name):
    """Plain, SE, CBAM and ECA variants of a (ResNet) model name."""
    base = model_name
    for prefix in ATTENTION_PREFIXES:
        if base.startswith(prefix):
            base = base[len(prefix) :]
    return [base, f"se_{base}", f"cbam_{base}", f"eca_{base}"]


class ImageClassificationTask(ClassificationTask):
    """Trains and evaluates zoo image classifiers on TFDS images."""

    name = "image_classification"

    def check_settings(self, config):
        cfg = config.data
        if getattr(cfg, "augment", "none") not in AUGMENTATIONS:
            raise UserError(
                f"Unknown data.augment {cfg.augment!r}. Choose one of: "
                f"{', '.join(AUGMENTATIONS)}"
            )
        if getattr(cfg, "crop_padding", 0) < 0:
            raise UserError(
                "data.crop_padding must be >= 0. Received: "
                f"data.crop_padding={cfg.crop_padding}"
            )

    def ablation_models(self, config):
        # Plain, SE, CBAM and ECA variants of the experiment's ResNet.
        return default_models(config.model.name)

    # --- Data -----------------------------------------------------------
    def _examples(self, builder, split, cfg, shape, max_examples):
        """`(dataset of (uint8 image, int32 label), num_examples)`."""
        ds, count = data_lib.open_split(builder, split, max_examples)
        image_key, label_key = cfg.image_key, cfg.label_key
        resize = bool(cfg.image_size)

        def decode(example):
            image = example[image_key]
            if image.shape.rank == 2:
                image = image[..., None]
            if resize:
                image = tf.image.resize(image, shape[:2])
                image = tf.clip_by_value(tf.round(image), 0, 255)
            image = tf.cast(image, tf.uint8)
            return image, tf.cast(example[label_key], tf.int32)

        ds = ds.map(decode, num_parallel_calls=AUTOTUNE)
        return (ds.cache() if cfg.cache else ds), count

    def _augment(self, cfg, shape, num_examples):
        """Batched augmentation with per-example stateless random draws.

        `augment(images, seeds)`: `images [n, h, w, c]`, `seeds [n, 2]` the
        seeds `TrainStream` derives from (run seed, epoch, position), so a
        resumed run or another worker count augments every example
        identically. Image `i` gets exactly what TensorFlow's per-example
        ops give for `seeds[i]`: `stateless_split` into a crop and a flip
        seed, `tf.image.stateless_random_crop` of the zero-padded image,
        `tf.image.stateless_random_flip_left_right`; the draws come from
        `experiments.batched_random` and the crops are one NumPy gather for
        the whole batch (a per-example `map` of those ops cost more than
        the training step on small images). All of it runs in one
        `tf.numpy_function`: `tf.data` re-optimises the mapped function's
        graph for every new iterator (every epoch), at a cost that grows
        with its op count (measured: 8 ms per digits epoch with the crop as
        TensorFlow ops, against ~20 ms of pipeline work in all).

        The draws of a whole epoch are computed at once: `TrainStream`
        gives every batch of an epoch the same epoch seed (column 0) and
        distinct positions below `num_examples` (column 1), and the ~150
        NumPy calls of the Philox rounds cost about the same for all the
        epoch's positions as for one batch's (measured on digits: 0.9 ms
        per batch of 64, ~20 ms per epoch, half the pipeline's CPU time).
        The batch then looks its rows up. Seeds of another form are drawn
        batch by batch (the same numbers).
        """
        pad = int(cfg.crop_padding)
        crop = cfg.augment in ("crop", "crop_flip") and pad > 0
        flip = cfg.augment in ("flip", "crop_flip")
        height, width = shape[0], shape[1]

        def draws(seeds):
            # The crop offsets [n, 2] and flips [n] of each seed.
            crop_seeds, flip_seeds = np.moveaxis(
                batched_random.split(seeds), 1, 0
            )
            words = batched_random.random_words(
                np.concatenate([crop_seeds, flip_seeds]), 3
            )
            n = len(seeds)
            # stateless_random_crop: offset = uniform int32 [0, 2**31 - 1)
            # per axis modulo (padded size - size + 1); the channel axis's
            # offset is always 0.
            offsets = batched_random.as_uniform_int(
                words[:n, :2], batched_random.INT32_MAX
            ) % np.int32(2 * pad + 1)
            mirror = batched_random.as_uniform(words[n:, 0]) < 0.5
            return offsets, mirror

        # The last two epochs' tables (a parallel map may still be
        # finishing the previous epoch when the next one starts).
        @functools.lru_cache(maxsize=2)
        def epoch_draws(epoch_seed):
            positions = np.arange(num_examples, dtype=np.int64)
            return draws(
                np.stack([np.full_like(positions, epoch_seed), positions], 1)
            )

        def batch_draws(seeds):
            epoch_seeds, positions = seeds[:, 0], seeds[:, 1]
            if (
                len(seeds)
                and (epoch_seeds == epoch_seeds[0]).all()
                and 0 <= positions.min()
                and positions.max() < num_examples
            ):
                offsets, mirror = epoch_draws(int(epoch_seeds[0]))
                return offsets[positions], mirror[positions]
            return draws(seeds)

        def augment_numpy(images, seeds):
            offsets, mirror = batch_draws(seeds)
            if crop:
                padded = np.pad(
                    images, [(0, 0), (pad, pad), (pad, pad), (0, 0)]
                )
                rows = offsets[:, :1] + np.arange(height)  # [n, h]
                columns = offsets[:, 1:] + np.arange(width)  # [n, w]
                batch = np.arange(len(images))[:, None, None]
                images = padded[batch, rows[:, :, None], columns[:, None, :]]
            if flip:
                images = np.where(
                    mirror[:, None, None, None], images[:, :, ::-1], images
                )
            return np.ascontiguousarray(images)

        def augment(images, seeds):
            out = tf.numpy_function(
                augment_numpy, [images, seeds], images.dtype, stateful=False
            )
            out.set_shape(images.shape)
            return out

        return augment

    def load_data(self, config, data_dir, strategy):
        cfg = config.data
        builder = data_lib.load_builder(cfg.name, data_dir, cfg.download)
        cfg = data_lib.resolve_splits(builder, cfg)
        data_lib.check_features(
            builder,
            {"data.image_key": cfg.image_key, "data.label_key": cfg.label_key},
        )
        shape = _image_shape(builder, cfg)
        names = label_names(builder, cfg.label_key)
        num_classes = len(names)

        def one_hot(image, label):
            return image, tf.one_hot(label, num_classes)

        examples, num_train = self._examples(
            builder, cfg.train_split, cfg, shape, cfg.max_train_examples
        )
        check_split_size(num_train, cfg.train_split, "training")
        augment = (
            self._augment(cfg, shape, num_train)
            if cfg.augment != "none"
            else None
        )

        def prepare(examples, seeds):
            images, labels = examples
            if augment is not None:
                images = augment(images, seeds)
            return one_hot(images, labels)

        stream = data_lib.TrainStream(
            examples,
            num_train,
            cfg.batch_size,
            seed=config.seed,
            shuffle_buffer=cfg.shuffle_buffer,
            prepare_batch=prepare,
        )
        stream.check()
        validation = None
        if cfg.validation_split:
            validation, _ = self._examples(
                builder, cfg.validation_split, cfg, shape, cfg.max_eval_examples
            )
            validation = (
                validation.map(one_hot, num_parallel_calls=AUTOTUNE)
                .batch(cfg.eval_batch_size)
                .prefetch(AUTOTUNE)
            )
        test, num_test = self._examples(
            builder, cfg.test_split, cfg, shape, cfg.max_eval_examples
        )
        check_split_size(num_test, cfg.test_split, "test")
        test = test.batch(cfg.eval_batch_size).prefetch(AUTOTUNE)
        return TaskData.from_stream(
            stream,
            validation=validation,
            test=test,
            info={
                "dataset": builder.info.full_name,
                "input_shape": list(shape),
                "num_classes": num_classes,
                "label_names": names,
                "num_train_examples": num_train,
                **data_lib.split_names(cfg),
                "num_test_examples": num_test,
            },
        )

    # --- Model ----------------------------------------------------------
    def model_defaults(self, config, data):
        return {
            "input_shape": tuple(data.info["input_shape"]),
            "num_classes": data.info["num_classes"],
        }

    def check_built_model(self, model, data):
        expected_in = tuple(data.info["input_shape"])
        got_in = tuple(model.input_shape[1:])
        if got_in != expected_in:
            raise UserError(
                f"Model input shape {got_in} does not match the data's "
                f"images {expected_in}; drop model.kwargs.input_shape or set "
                "data.image_size."
            )

    def metrics(self, config, data):
        metrics = super().metrics(config, data)
        # Top-5 says little below ~20 classes (on 10 it sits near 1.0).
        if data.info["num_classes"] >= 20:
            metrics.append(
                keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy")
            )
        return metrics

    # --- Evaluation -----------------------------------------------------
    def predict(self, model, dataset):
        """`(images, labels, probabilities)` of a batched test dataset."""
        images, labels, probs = [], [], []
        for x, y in dataset:
            probs.append(np.asarray(model(x, training=False)))
            images.append(x.numpy())
            labels.append(y.numpy())
        if not probs:
            raise UserError("The test split is empty.")
        return (
            np.concatenate(images),
            np.concatenate(labels),
            np.concatenate(probs).astype("float64"),
        )

    def evaluate(self, model, data, config, run_dir):
        names = data.info["label_names"]
        images, labels, probs = self.predict(model, data.test)
        results, predicted = self.score(labels, probs, data, config, run_dir)
        k = min(5, len(names))
        top_k = np.argsort(-probs, axis=-1)[:, :k]
        results[f"test_top{k}_accuracy"] = float(
            np.mean((top_k == labels[:, None]).any(-1))
        )
        if config.eval.plots:
            folder = os.path.join(run_dir, "plots")
            count = min(config.eval.attention_maps, len(images))
            if count:
                chosen = pick_examples(labels, predicted, count)
                maps = zoo.attention_maps(model, images[chosen])
                if maps:
                    captions = [
                        f"true {names[labels[i]]}, pred {names[predicted[i]]}"
                        for i in chosen
                    ]
                    plots.attention_overlays(
                        images[chosen],
                        maps,
                        os.path.join(folder, "attention_maps.png"),
                        captions=captions,
                        title=f"{config.model.name}: where it looks",
                    )
                    results["attention_maps"] = sorted(maps)
        return results

    def summary_line(self, metrics):
        keys = [k for k in metrics if k.startswith("test_top")]
        top = f", {keys[0]}: {metrics[keys[0]]:.2%}" if keys else ""
        return (
            f"Test accuracy (top-1): {metrics['test_accuracy']:.2%}{top} "
            f"on {metrics['num_test_examples']} test images"
        )

    # --- Export ---------------------------------------------------------
    def export(self, model, data, config, path):
        height, width, channels = data.info["input_shape"]
        names = tf.constant(data.info["label_names"])
        num_classes = len(data.info["label_names"])
        trained_size = tf.constant([height, width, channels], tf.int32)

        # Any image size is accepted and resized (bilinear, antialiased) to
        # the training size, which the outputs and the `metadata`
        # signature state; a wrong dtype is refused by the signature, a
        # wrong rank, channel count or an empty image by `serving_input`.
        @tf.function(
            input_signature=[tf.TensorSpec(None, tf.uint8, name="images")]
        )
        def serve(images):
            images = export_lib.serving_input(
                images,
                [None, None, None, channels],
                f"`images`: a uint8 batch [batch, height, width, {channels}]"
                " of images at least 1x1",
                nonempty_axes=(1, 2),
            )
            shape = tf.shape(images)

            def resize():
                resized = tf.image.resize(
                    images, [height, width], antialias=True
                )
                return tf.cast(
                    tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8
                )

            same = tf.logical_and(
                tf.equal(shape[1], height), tf.equal(shape[2], width)
            )
            images = tf.cond(same, lambda: images, resize)
            images = tf.ensure_shape(images, [None, height, width, channels])
            # An empty request skips the model: some CPU matmul kernels
            # (oneDNN on AVX-512 Intel CPUs) reject a batch of zero rows
            # inside MLP-Mixer's token mixing.
            probabilities = tf.cond(
                tf.shape(images)[0] > 0,
                lambda: tf.cast(model(images, training=False), tf.float32),
                lambda: tf.zeros([0, num_classes], tf.float32),
            )
            batch = tf.shape(probabilities)[0]
            return {
                # [B, 3] the trained [height, width, channels] (every row).
                "image_size": tf.tile(trained_size[None], [batch, 1]),
                # [B] whether the request's images were resized to it.
                "resized": tf.fill([batch], tf.logical_not(same)),
                # [B, num_classes] class probabilities.
                "probabilities": probabilities,
                **label_outputs(probabilities, names),
            }

        # No inputs: what a client needs to know before its first request.
        @tf.function(input_signature=[])
        def metadata():
            return {"image_size": trained_size, "label_names": names}

        return export_lib.export_saved_model(
            path, model, serve, extra_endpoints={"metadata": metadata}
        )


TASK = ImageClassificationTask()
