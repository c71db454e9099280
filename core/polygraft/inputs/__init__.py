"""From a raw example to a batch out of a DataLoader: datasets and collate, samplers, workers, loaders, and the
input cache that keeps prepared examples across epochs.

* :mod:`~polygraft.inputs.datasets`: the torch Datasets a loader reads, ``Collate``, data errors out of workers.
* :mod:`~polygraft.inputs.samplers`: resumable, sharded and length-grouped orders.
* :mod:`~polygraft.inputs.workers`: how many DataLoader workers pay, and their set-up.
* :mod:`~polygraft.inputs.loaders`: the loaders of one fit (``Loaders``) and ``make_loader``.
* :mod:`~polygraft.inputs.cache`: what to keep of each split (``plan``), computing it once (``compute``) and the
  on-disk store (``disk``).

The trainer (``polygraft.training``) uses this package; plugins never import it (they implement
``polygraft.interfaces``).
"""
