"""Explain predictions in every modality: attribution maps that are checked, not only drawn.

* :func:`explain` — one input, one method (Integrated Gradients, Grad-CAM, occlusion), one map per output;
* :func:`render` — the HTML page (text), PNG overlays (images, spectrograms) and the JSON beside them;
* :mod:`polygraft.explain.checks` — completeness, pointing game, deletion and model-randomisation checks.

What a backbone must declare for the gradient methods is :class:`polygraft.interfaces.AttributionHooks`
(``Backbone.attribution_hooks()``); without it a backbone still gets occlusion.

Example:
    >>> import polygraft
    >>> from polygraft.explain import explain
    >>> task = polygraft.create_task("classification", backbone="toy", num_classes=2,
    ...                              backbone_options={"in_features": 2}).eval()
    >>> explain(task, {"x": [1.0, -1.0]}).methods
    ['occlusion']
"""

from __future__ import annotations

from polygraft.explain.api import Attribution, Explanation, explain, prepare
from polygraft.explain.registry import Settings, explainer_names, register_explainer
from polygraft.explain.render import render

__all__ = ["Attribution", "Explanation", "Settings", "explain", "explainer_names", "prepare", "register_explainer",
           "render"]
