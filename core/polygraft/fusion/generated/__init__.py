"""Generated multimodal data sets that show fusion measurably, written as ``multimodal-manifest`` folders under
``POLYGRAFT_CACHE`` (deterministic: the same options give the same files; splits are disjoint):

* ``shape-captions`` (:mod:`~polygraft.fusion.generated.shape_captions`): does the caption describe the shape?
* ``av-digits`` (:mod:`~polygraft.fusion.generated.av_digits`): a degraded digit image and a noisy spoken digit.
* ``review-numbers`` (:mod:`~polygraft.fusion.generated.review_numbers`): a review and two numbers.
"""
