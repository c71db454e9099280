"""Components that ship with core: a toy backbone, synthetic data, the modality-free tasks, strategies."""
