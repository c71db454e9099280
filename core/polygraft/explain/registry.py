"""The explainer registry: method names, which methods apply to a model, and the default per input kind.

An explainer is a small object with a ``name``, ``aliases``, a one-line ``summary``, ``applies(subject)`` (``None``
when it can explain this subject, else the reason it cannot) and ``attribute(subject, target, settings)``, which
returns one :class:`RawAttribution`. Method families live in their own modules (``integrated_gradients``,
``gradcam``, ``occlusion``) and register themselves here when :func:`load_builtin` imports them.

Adding a method is registering one more explainer; nothing else changes. The modality-contribution methods of
the ``fusion`` backbone (:mod:`polygraft.explain.modality`) are two of these: ``applies`` refuses any other
backbone, ``attribute`` returns one value per branch (``RawAttribution(values=..., unit_level=True,
units=[branch names])``) and ``output_kind`` makes the explanation's kind ``modality`` (drawn as bars).

Example:
    >>> from polygraft.explain.registry import explainer_names
    >>> explainer_names()
    ['gradcam', 'integrated-gradients', 'modality-ablation', 'modality-shapley', 'occlusion']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from polygraft.errors import ConfigError, IncompatibleComponentsError, UnknownComponentError
from polygraft.options import closest

if TYPE_CHECKING:
    import torch

    from polygraft.explain.subject import Subject
    from polygraft.explain.tasks import Target

DEFAULT_ORDER: dict[str, tuple[str, ...]] = {
    "tokens": ("integrated-gradients", "occlusion"),
    "image": ("gradcam", "integrated-gradients", "occlusion"),
    "spectrogram": ("integrated-gradients", "occlusion", "gradcam"),
    "waveform": ("integrated-gradients", "occlusion"),
    "vector": ("integrated-gradients", "occlusion"),
    "grid": ("integrated-gradients", "occlusion"),
}
"""The method ``polygraft explain`` uses without ``--method``: the first that applies, per input kind."""


@dataclass
class Settings:
    """Options every explainer reads (those that do not concern it are ignored).

    Attributes:
        steps: Integrated Gradients' first number of steps (doubled until completeness holds).
        max_steps: the most steps Integrated Gradients tries.
        tolerance: completeness tolerance, ``|sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|``.
        batch_size: examples per forward pass inside an explainer (interpolation steps, occluded copies).
        min_box_score, max_boxes: detection explains at most ``max_boxes`` predicted boxes (best first) scoring
            at least ``min_box_score``.
    """

    steps: int | None = None
    max_steps: int = 256
    tolerance: float = 0.05
    batch_size: int | None = None
    min_box_score: float = 0.3
    max_boxes: int = 10


@dataclass
class RawAttribution:
    """An explainer's answer for one target: ``values`` shaped like one example's attributed input (or already a
    map of units when ``unit_level``), and the completeness check for methods that have one."""

    values: torch.Tensor
    unit_level: bool = False
    completeness: dict[str, Any] | None = None
    units: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    #: added to the explanation's ``info`` (the JSON row), e.g. the values a method compared
    info: dict[str, Any] = field(default_factory=dict)


class Explainer:
    """Base class of a method family member."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    #: (module, pip requirement) pairs the method imports when it runs
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: the explanation's ``kind`` when it is not the attributed input's (``modality``: one value per branch)
    output_kind: ClassVar[str | None] = None

    def applies(self, subject: Subject) -> str | None:
        """``None`` when this method can explain ``subject``; otherwise why not (shown to the user)."""
        return None

    def attribute(self, subject: Subject, target: Target, settings: Settings) -> RawAttribution:
        raise NotImplementedError


_EXPLAINERS: dict[str, Explainer] = {}


def register_explainer(explainer: Explainer, *, replace: bool = False) -> Explainer:
    """Add a method under its name and aliases; a clash is an error unless ``replace``."""
    for name in (explainer.name, *explainer.aliases):
        if not replace and name in _EXPLAINERS and _EXPLAINERS[name] is not explainer:
            raise ConfigError(f"explainer name {name!r} is taken by {type(_EXPLAINERS[name]).__name__}")
        _EXPLAINERS[name] = explainer
    return explainer


def load_builtin() -> None:
    """Import the method families (each registers itself)."""
    import polygraft.explain.gradcam
    import polygraft.explain.integrated_gradients
    import polygraft.explain.modality
    import polygraft.explain.occlusion  # noqa: F401


def explainer_names() -> list[str]:
    """The registered methods' main names, sorted."""
    load_builtin()
    return sorted({explainer.name for explainer in _EXPLAINERS.values()})


def get_explainer(name: str) -> Explainer:
    load_builtin()
    if name not in _EXPLAINERS:
        near = closest(name, list(_EXPLAINERS))
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise UnknownComponentError(f"unknown explanation method {name!r}{hint} Methods: {', '.join(explainer_names())}")
    return _EXPLAINERS[name]


def applicable(subject: Subject) -> list[str]:
    """The methods that can explain this subject, default first."""
    names = explainer_names()
    order = DEFAULT_ORDER.get(subject.hooks.kind, ())
    ranked = [n for n in order if n in names] + [n for n in names if n not in order]
    return [n for n in ranked if _EXPLAINERS[n].applies(subject) is None]


def check_installed(explainer: Explainer) -> None:
    """A missing library is an error saying what to install, not an ImportError from deep inside."""
    import importlib.util

    missing = [pip for module, pip in explainer.requires if importlib.util.find_spec(module) is None]
    if missing:
        raise IncompatibleComponentsError(f"--method {explainer.name} needs {', '.join(missing)}: pip install -r "
                                          "requirements/explain.txt (or pip install 'polygraft[explain]')")


def resolve(method: str | None, subject: Subject) -> Explainer:
    """The explainer for ``--method`` (or the default); a method that does not apply names those that do."""
    usable = applicable(subject)
    if method is None:
        if not usable:
            raise IncompatibleComponentsError("no explanation method applies to this model")
        explainer = _EXPLAINERS[usable[0]]
    else:
        explainer = get_explainer(method)
        reason = explainer.applies(subject)
        if reason is not None:
            backbone = subject.task.backbone.spec_name or type(subject.task.backbone).__name__
            raise IncompatibleComponentsError(f"--method {explainer.name} does not apply to this {backbone!r} model: "
                                              f"{reason}. Methods that do: {', '.join(usable) or 'none'}")
    check_installed(explainer)
    return explainer
