"""The input cache: prepared examples computed once and kept across epochs and validations.

* :mod:`~polygraft.inputs.cache.plan`: :class:`InputCache` decides, per split, what to keep and where (memory,
  disk, decoded examples, nothing) and why.
* :mod:`~polygraft.inputs.cache.compute`: computing a split's examples once, in this process or in workers, and
  measuring what they hold.
* :mod:`~polygraft.inputs.cache.disk`: the on-disk store (safetensors shards checked against their key).
"""
