"""The shared trainer and the pieces it wires: loop, precision, distribution, checkpoints, callbacks."""
