"""Semantic editing of inversions: learned attribute directions, morphing, latent directions.

Plain PyTorch, like :mod:`sphinx.inversion`: ``learn_attribute`` optimizes an inversion
together with a W+ direction per image (the authors' attribute learner); ``morph``,
``apply_direction`` and ``render_attribute`` edit saved inversion states.
"""

from sphinx.editing.attribute import (
    AttributeEdit,
    AttributeResult,
    learn_attribute,
    monotonicity_hinge,
    render_attribute,
)
from sphinx.editing.directions import (
    PrincipalDirections,
    apply_direction,
    as_layer_direction,
    load_direction,
    principal_directions,
)
from sphinx.editing.latents import normalize_rows, state_inputs
from sphinx.editing.measures import (
    achieved_amount,
    attribute_flags,
    attribute_measures,
    morph_measures,
    unchanged_measure,
)
from sphinx.editing.morph import morph
from sphinx.editing.transforms import (
    TRANSFORMS,
    Brightness,
    Hue,
    Rotate,
    Transform,
    Translate,
    Zoom,
    build_transform,
    check_factor,
    check_factors,
)

__all__ = [
    "TRANSFORMS",
    "AttributeEdit",
    "AttributeResult",
    "Brightness",
    "Hue",
    "PrincipalDirections",
    "Rotate",
    "Transform",
    "Translate",
    "Zoom",
    "achieved_amount",
    "apply_direction",
    "as_layer_direction",
    "attribute_flags",
    "attribute_measures",
    "build_transform",
    "check_factor",
    "check_factors",
    "learn_attribute",
    "load_direction",
    "monotonicity_hinge",
    "morph",
    "morph_measures",
    "normalize_rows",
    "principal_directions",
    "render_attribute",
    "state_inputs",
    "unchanged_measure",
]
