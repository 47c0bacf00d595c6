"""The score registry: `get_score("dot")` and friends (Luong et al. 2015).

Names follow Luong, Pham & Manning 2015 (`dot`, `general`, `concat`,
`location`) and Bahdanau, Cho & Bengio 2014 (`additive`, an alias of
`concat`), plus `scaled_dot` and `cosine`.
"""

import keras

from layers.naming import UnknownNameError
from layers.naming import did_you_mean
from layers.scores.additive_score import AdditiveScore
from layers.scores.cosine_score import CosineScore
from layers.scores.dot_score import DotScore
from layers.scores.general_score import GeneralScore
from layers.scores.location_score import LocationScore
from layers.scores.scaled_dot_score import ScaledDotScore
from layers.scores.score import Score

SCORES = {
    "dot": DotScore,
    "scaled_dot": ScaledDotScore,
    "general": GeneralScore,
    "additive": AdditiveScore,
    "concat": AdditiveScore,
    "cosine": CosineScore,
    "location": LocationScore,
}


def _unknown(identifier):
    names = sorted(SCORES)
    return UnknownNameError(
        f"Unknown score. Valid names: {names}."
        f"{did_you_mean(identifier, names)} "
        f"Received: score={identifier!r}"
    )


def get_score(identifier):
    """Looks up a score: a name gives the class, a config an instance.

    Args:
        identifier: a registered name (`"dot"`, `"scaled_dot"`, `"general"`,
            `"additive"`, `"concat"`, `"cosine"`, `"location"`), a `Score`
            subclass (returned as is), a `Score` instance (returned as is),
            or a config dict: either a Keras serialisation
            (`keras.saving.serialize_keras_object(score)`) or
            `{"class_name": "general", "config": {...}}`, both giving a new
            instance.

    Returns:
        A `Score` subclass (for names and classes) or instance.

    Raises:
        ValueError: for an unknown name (listing the valid and the closest
            names) or an object that is not a score.

    Example:
    ```python
    from layers import get_score

    score = get_score("general")()
    ```
    """
    if isinstance(identifier, Score):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Score):
        return identifier
    if isinstance(identifier, str):
        if identifier not in SCORES:
            raise _unknown(identifier)
        return SCORES[identifier]
    if isinstance(identifier, dict):
        class_name = identifier.get("class_name")
        if class_name in SCORES:
            return SCORES[class_name](**identifier.get("config", {}))
        score = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(score, Score):
            raise ValueError(
                "The config does not describe a `Score` layer. "
                f"Received: score={identifier!r}"
            )
        return score
    raise ValueError(
        "`score` must be a score name, a `Score` class or instance, or a "
        f"config dict. Received: score={identifier!r}"
    )


def create_score(identifier, score_kwargs=None, **layer_kwargs):
    """Returns a `Score` instance for any `get_score` identifier.

    Names and classes are instantiated with `score_kwargs` and
    `layer_kwargs` (e.g. `dtype`, `name`); instances and configs are used as
    they are, so `score_kwargs` must then be empty.

    Args:
        identifier: anything `get_score` accepts.
        score_kwargs: dict of constructor arguments of the score.
        **layer_kwargs: base layer arguments for a new instance.

    Returns:
        A `Score` instance.
    """
    score = get_score(identifier)
    score_kwargs = dict(score_kwargs or {})
    if not isinstance(score, type):
        if score_kwargs:
            raise ValueError(
                "`score_kwargs` can only be given with a score name or "
                f"class, not with a score instance or config. Received: "
                f"score={identifier!r}, score_kwargs={score_kwargs!r}"
            )
        return score
    try:
        return score(**score_kwargs, **layer_kwargs)
    except TypeError as err:
        raise ValueError(
            f"Could not create the score {identifier!r} from "
            f"score_kwargs={score_kwargs!r}: {err}"
        ) from err
