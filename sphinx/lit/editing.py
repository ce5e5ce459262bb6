"""EditModule: the thin Lightning layer of ``python -m sphinx.edit``.

Each test batch learns an attribute (``edit.kind: attribute``) or obtains inversions (inverted
here, or loaded from a finished ``sphinx.run``) that are then moved along a direction
(``direction``) or, once all are done, morphed pairwise (``morph``). Its outcome is written by
:class:`sphinx.lit.callbacks.WriteImages` through an :class:`sphinx.rundir.writer.EditWriter`.
"""

from __future__ import annotations

from collections.abc import Callable

from sphinx.editing import learn_attribute
from sphinx.editing.spec import EditSpec
from sphinx.inversion import StepReport, invert
from sphinx.lit.module import InversionModule
from sphinx.rundir.writer import CONTROL_MARK, INVERSION_MARK, BatchOutcome


class EditModule(InversionModule):
    """Edits each test batch; see the module docstring.

    Args:
        generator: the frozen generator.
        edit: what to do with each image.
        **options: as for :class:`sphinx.lit.module.InversionModule`.
    """

    work = "edit"

    def __init__(self, generator, *, edit: EditSpec, **options) -> None:
        super().__init__(generator, **options)
        self.edit = edit

    def compute(self, outcome: BatchOutcome, *, callback: Callable[[StepReport], None]):
        """An attribute learned with each image's inversion, or its inversion (None: saved states)."""
        o, states = self.edit.options, self.edit.initial_states
        common = dict(
            seed=self.seed,
            lpips=self.lpips,
            callback=callback,
            checkpoint=self.checkpoint(outcome.ids),
            execution=self.execution,
        )
        if self.edit.kind == "attribute":
            if not o["fit_inversion"] and not states:  # keep an inversion made here first, as sphinx.run makes it
                first = {**common, "checkpoint": self.checkpoint([*outcome.ids, INVERSION_MARK])}
                inverted = invert(self.generator, outcome.targets, outcome.ids, method=self.method, **first)
                states = dict(zip(outcome.ids, inverted.states))
            attribute = dict(
                transform=o["transform"],
                factors=o["factors"],
                method=self.method,
                mono_weight=o["mono_weight"],
                margin=o["margin"],
                attribute_lr=o["attribute_lr"],
                fit_inversion=o["fit_inversion"],
                initial_states=[states[i] for i in outcome.ids] if states else None,
            )
            learned = learn_attribute(self.generator, outcome.targets, outcome.ids, **attribute, **common)
            if o["control"]:  # the same run with every direction frozen at its random start
                common["checkpoint"] = self.checkpoint([*outcome.ids, CONTROL_MARK])
                outcome.control = learn_attribute(
                    self.generator, outcome.targets, outcome.ids, **attribute, **common, learn_direction=False
                )
            return learned
        if states:
            outcome.states = {image_id: states[image_id] for image_id in outcome.ids}
            return None
        return invert(
            self.generator, outcome.targets, outcome.ids, method=self.method, degradation=self.degradation, **common
        )

    def _score(self, outcome: BatchOutcome) -> None:
        """Edits are measured per image by the writer (walks against their targets), not here."""
