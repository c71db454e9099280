"""Every polygraft hook. Plugins implement them with :data:`hookimpl`.

Each collecting hook receives ``register``: call it once per spec, ``register(spec)`` or
``register(spec, replace=True)`` to override another plugin's component on purpose. The host knows which plugin
is calling, so duplicate names are reported with both owners.

Example plugin module (``my_plugin/plugin.py``)::

    from polygraft import hookimpl
    from polygraft.specs import BackboneSpec

    @hookimpl
    def polygraft_register_backbones(register):
        register(BackboneSpec(name="mynet", factory="my_plugin.backbone:create", modality="vision",
                              produces=("pooled",)))

Pluggy's rules apply: never give a hookimpl parameter a default value; hooks gain arguments, never change them.
"""

from __future__ import annotations

from typing import Protocol

import pluggy

from polygraft.specs import ComponentSpec

PROJECT_NAME = "polygraft"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callable each collecting hook receives."""

    def __call__(self, spec: ComponentSpec, *, replace: bool = False) -> None: ...


@hookspec
def polygraft_register_backbones(register: Register) -> None:
    """Register :class:`~polygraft.specs.BackboneSpec` objects."""


@hookspec
def polygraft_register_tasks(register: Register) -> None:
    """Register :class:`~polygraft.specs.TaskSpec` objects (head + loss + metrics + decoding)."""


@hookspec
def polygraft_register_datasets(register: Register) -> None:
    """Register :class:`~polygraft.specs.DatasetSpec` objects."""


@hookspec
def polygraft_register_objectives(register: Register) -> None:
    """Register :class:`~polygraft.specs.ObjectiveSpec` objects (pretraining objectives)."""


@hookspec
def polygraft_register_strategies(register: Register) -> None:
    """Register :class:`~polygraft.specs.StrategySpec` objects (fine-tuning strategies)."""


@hookspec
def polygraft_register_weights(register: Register) -> None:
    """Register :class:`~polygraft.specs.WeightsSpec` objects (named pretrained weights, resolved locally)."""


@hookspec
def polygraft_register_callbacks(register: Register) -> None:
    """Register :class:`~polygraft.specs.CallbackSpec` objects (trainer callbacks recipes can name)."""


@hookspec
def polygraft_register_modalities(register: Register) -> None:
    """Register :class:`~polygraft.specs.ModalitySpec` objects: kinds of input other plugins' components may name
    as their ``modality`` (core declares text, vision, speech and any)."""


@hookspec
def polygraft_register_commands(register: Register) -> None:
    """Register :class:`~polygraft.specs.CommandSpec` objects: ``polygraft`` subcommands (``polygraft NAME ...``)
    whose entry point ``main(argv) -> int`` is imported only when the command runs (llm's ``register_commands``)."""


# hook name -> component kind it collects
COLLECTING_HOOKS: dict[str, str] = {
    "polygraft_register_backbones": "backbone",
    "polygraft_register_tasks": "task",
    "polygraft_register_datasets": "dataset",
    "polygraft_register_objectives": "objective",
    "polygraft_register_strategies": "strategy",
    "polygraft_register_weights": "weights",
    "polygraft_register_callbacks": "callback",
    "polygraft_register_modalities": "modality",
    "polygraft_register_commands": "command",
}
