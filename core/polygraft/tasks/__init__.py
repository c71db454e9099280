"""Modality-free tasks: heads read only Features, so each task serves text, images and audio alike."""
