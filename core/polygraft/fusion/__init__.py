"""Multimodal fusion: one model over text, images, audio and numbers, built from any registered backbones.

The ``fusion`` backbone composes branches: each branch is any registered backbone (any plugin's, a third party's
new modality included) built through the caller's catalog, reading some named fields of an example with its own
preprocessor. Their features are fused (``mlp``, ``transformer`` or ``concat``) into modality-free
:class:`~polygraft.features.Features`, so every task that reads pooled features works on it unchanged. An example
may lack a field: that branch's output is replaced by a learned "missing" embedding (``modality_dropout`` trains
for it), and every encoder still takes part in each training step, so DDP never sees unused parameters.

Modules (nothing heavy is imported here):

* :mod:`~polygraft.fusion.branches`: reading and checking ``branches:``; how a branch's fields become its example.
* :mod:`~polygraft.fusion.preprocess`: the fused preprocessor (per-branch inputs plus a presence mask).
* :mod:`~polygraft.fusion.layers`: the fusion layers and :class:`~polygraft.fusion.layers.FusionFeatures`.
* :mod:`~polygraft.fusion.backbone`: the ``fusion`` backbone and its factory.
* :mod:`~polygraft.fusion.scoped`: callbacks and trainer views scoped to one branch.
* :mod:`~polygraft.fusion.strategy`: the ``per-branch`` strategy (probe, LoRA, LLRD, a learning-rate multiplier
  for one branch).
* :mod:`~polygraft.fusion.manifest`, :mod:`~polygraft.fusion.media`: the ``multimodal-manifest`` dataset.
* :mod:`polygraft.fusion.generated`: the generated sets ``shape-captions``, ``av-digits``, ``review-numbers``.

See docs/fusion.md.
"""
