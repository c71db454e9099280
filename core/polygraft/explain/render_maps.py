"""PNG figures of attribution maps (matplotlib, imported here only): overlays on the input as the model saw it.

Maps are drawn with one diverging scale per panel: red where the input raises the explained output, blue where
it lowers it, transparent where it does not matter (Grad-CAM maps are non-negative, so they are red only). The
first panel is the input itself; images are un-normalised with the preprocessor's mean/std, spectrograms are
drawn with low frequencies at the bottom and time in seconds, waveforms as their log-mel spectrogram.

Example:
    >>> import numpy as np
    >>> from polygraft.explain.render_maps import signed_unit
    >>> float(signed_unit(np.array([[0.0, 2.0], [-4.0, 1.0]])).min())
    -1.0
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from polygraft.explain.api import Attribution, Explanation
    from polygraft.explain.subject import Subject

MAX_PANELS = 12
COLUMNS = 4


def signed_unit(scores: np.ndarray) -> np.ndarray:
    """Scores scaled into [-1, 1] by their 99.5th percentile of magnitude (robust to a few extreme cells)."""
    scale = float(np.percentile(np.abs(scores), 99.5)) or float(np.abs(scores).max()) or 1.0
    return np.clip(scores / scale, -1.0, 1.0)


def display_input(subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
    """The attributed input of one example as an array to draw, and imshow settings for it."""
    x = subject.x[0].detach().float().cpu()
    if subject.hooks.kind == "image" and x.dim() == 3:
        described = subject.task.backbone.preprocessor.describe()
        mean, std = described.get("mean"), described.get("std")
        if mean is not None and std is not None and len(mean) == x.shape[0] == len(std):
            x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
        else:
            x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)
        image = x.clamp(0, 1).permute(1, 2, 0).numpy()
        return (image[..., 0] if image.shape[-1] == 1 else image), {"cmap": "gray"}
    grid = x.reshape(-1, *x.shape[-2:]).mean(0).numpy() if x.dim() >= 2 else x[None].numpy()
    settings: dict[str, Any] = {"cmap": "gray"}
    if subject.hooks.kind == "spectrogram":
        step = subject.hooks.seconds_per_step
        settings.update(origin="lower", aspect="auto",
                        extent=[0, grid.shape[1] * (step or 1), 0, grid.shape[0]])
    return grid, settings


def _figure(count: int) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(COLUMNS, count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.4 * rows), squeeze=False)
    flat = list(axes.ravel())
    for axis in flat[count:]:
        axis.axis("off")
    return figure, flat[:count]


def _title(attribution: Attribution) -> str:
    text = f"{attribution.target}"
    if attribution.completeness:
        text += f"\nΔ {attribution.completeness['relative_delta']:.1%} of f(x)−f(b)"
    return text


def _save(figure: Any, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _headline(explanation: Explanation) -> str:
    prediction = explanation.prediction
    said = prediction.get("label") or prediction.get("transcript") or f"{len(prediction.get('boxes', []))} boxes"
    return f"{explanation.method} — prediction: {said}"


def draw_maps(explanation: Explanation, path: Path) -> Path:
    """Images and spectrograms: the input, then one overlay per explained output (up to 11)."""
    from matplotlib.patches import Rectangle

    shown = explanation.attributions[: MAX_PANELS - 1]
    figure, axes = _figure(len(shown) + 1)
    background, settings = display_input(explanation.subject)
    axes[0].imshow(background, **settings)
    axes[0].set_title("input")
    for axis, attribution in zip(axes[1:], shown):
        axis.imshow(background, **settings)
        unit = signed_unit(attribution.scores)
        overlay = {key: value for key, value in settings.items() if key != "cmap"}
        axis.imshow(unit, cmap="RdBu_r", vmin=-1, vmax=1, alpha=np.abs(unit) * 0.75, **overlay)
        box = attribution.info.get("input_box")
        if box:
            axis.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, lw=1.5,
                                     edgecolor="lime"))
        axis.set_title(_title(attribution), fontsize=9)
    for axis in axes:
        if explanation.kind != "spectrogram":
            axis.set_xticks([])
            axis.set_yticks([])
        else:
            axis.set_xlabel("seconds" if explanation.subject.hooks.seconds_per_step else "frame", fontsize=8)
    return _save(figure, path, _headline(explanation))


def waveform_spectrogram(subject: Subject) -> tuple[np.ndarray, float]:
    """A display log-mel spectrogram (64 bins, dB) of the attributed waveform and its duration in seconds."""
    import torchaudio

    wave = subject.x[0].detach().float().cpu().reshape(-1)
    rate = int(getattr(subject.task.backbone.preprocessor, "sample_rate", 16000))
    hop = int(subject.hooks.frame_size or 160)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=rate, n_fft=max(400, 2 * hop), hop_length=hop,
                                               n_mels=64)(wave)
    return (10 * torch.log10(mel.clamp_min(1e-10))).numpy(), wave.shape[0] / rate


def draw_waveform(explanation: Explanation, path: Path) -> Path:
    """Waveforms: per-frame attributions as a band over the clip's log-mel spectrogram, one panel per output."""
    shown = explanation.attributions[: MAX_PANELS - 1]
    figure, axes = _figure(len(shown) + 1)
    spectrogram, seconds = waveform_spectrogram(explanation.subject)
    extent = [0, seconds, 0, spectrogram.shape[0]]
    axes[0].imshow(spectrogram, origin="lower", aspect="auto", cmap="gray", extent=extent)
    axes[0].set_title("input (log-mel)")
    for axis, attribution in zip(axes[1:], shown):
        axis.imshow(spectrogram, origin="lower", aspect="auto", cmap="gray", extent=extent)
        unit = signed_unit(attribution.scores)
        columns = np.interp(np.linspace(0, len(unit) - 1, spectrogram.shape[1]), np.arange(len(unit)), unit)
        band = np.broadcast_to(columns, spectrogram.shape)
        axis.imshow(band, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                    alpha=np.abs(band) * 0.6, extent=extent)
        axis.set_title(_title(attribution), fontsize=9)
    for axis in axes:
        axis.set_xlabel("seconds", fontsize=8)
    return _save(figure, path, _headline(explanation))


def draw_vectors(explanation: Explanation, path: Path) -> Path:
    """Feature vectors: the 20 largest attributions per output as horizontal bars."""
    shown = explanation.attributions[:MAX_PANELS]
    figure, axes = _figure(len(shown))
    for axis, attribution in zip(axes, shown):
        names = attribution.units or [str(i) for i in range(len(attribution.scores))]
        order = np.argsort(-np.abs(attribution.scores))[:20][::-1]
        values = attribution.scores[order]
        axis.barh([names[i] for i in order], values, color=["#1a9850" if v >= 0 else "#d73027" for v in values])
        axis.set_title(_title(attribution), fontsize=9)
        axis.tick_params(labelsize=7)
    return _save(figure, path, _headline(explanation))


def draw_modalities(explanation: Explanation, path: Path) -> Path:
    """A fused model's modality contributions: one bar per branch (in branch order), one panel per output."""
    shown = explanation.attributions[:MAX_PANELS]
    figure, axes = _figure(len(shown))
    for axis, attribution in zip(axes, shown):
        absent = set(attribution.info.get("absent_branches", ()))
        names = [f"{name} (absent)" if name in absent else name
                 for name in attribution.units or [str(i) for i in range(len(attribution.scores))]]
        values = attribution.scores
        axis.barh(names[::-1], values[::-1], color=["#1a9850" if v >= 0 else "#d73027" for v in values[::-1]])
        axis.axvline(0.0, color="black", lw=0.6)
        quantity = attribution.source.quantity if attribution.source else "score"
        axis.set_xlabel(f"contribution to the {quantity}", fontsize=8)
        axis.set_title(_title(attribution), fontsize=9)
        axis.tick_params(labelsize=8)
    return _save(figure, path, _headline(explanation))
