"""Checking a component's options before its factory runs: one mechanism for every kind and every plugin.

A component's options are the keyword parameters of its factory (a function or a class), read from the
signature: names, defaults and type hints. Third-party components get the checks for free. A factory that takes
``**options`` (because it forwards them to a library) declares the names it accepts in its spec's
``metadata={"options": [...]}`` (a list of names, or a mapping of name → description).

* an unknown name → :class:`~polygraft.errors.ConfigError` naming the closest valid names and listing them all;
* a value of the wrong type (``batch_size: [4]``, ``dropout: abc``, ``max_steps: 2.5``, ``skip_invalid:
  no-thanks``) → a ConfigError saying what is allowed; YAML strings that spell a number (``5e-5``) or a boolean
  (``yes``) are converted, as pydantic's lax mode does;
* a required option that is missing or empty → a ConfigError naming it.

Values that are not plain data (a tokenizer object passed from Python) are passed through unchecked.

Example:
    >>> from polygraft.options import check_options
    >>> def create(*, path: str, skip_invalid: bool = False, size: int = 10): ...
    >>> check_options(create, {"path": "a.csv", "size": "12"}, what="dataset 'x'")
    {'path': 'a.csv', 'size': 12}
    >>> check_options(create, {"path": "a.csv", "skip_invalide": True}, what="dataset 'x'")
    Traceback (most recent call last):
    ...
    polygraft.errors.ConfigError: dataset 'x' has no option 'skip_invalide'; did you mean 'skip_invalid'? Its options: path, skip_invalid, size
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from polygraft.errors import ConfigError

PLAIN_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


@dataclass(frozen=True)
class Option:
    """One accepted option: its name, whether it is required, its type hint (``None`` when unknown)."""

    name: str
    required: bool = False
    annotation: Any = None
    annotation_text: str = ""


def _target(factory: Callable[..., Any]) -> Callable[..., Any]:
    return factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]


def _resolve(annotation: Any, function: Callable[..., Any]) -> Any:
    """Evaluate a string annotation in the factory's module; ``None`` when it names type-checking-only types."""
    if not isinstance(annotation, str):
        return annotation
    namespace = {**vars(typing), **getattr(function, "__globals__", {})}
    try:
        return eval(annotation, namespace)
    except Exception:
        return None


@functools.lru_cache(maxsize=512)
def factory_options(factory: Callable[..., Any], declared: tuple[str, ...] = ()) -> tuple[dict[str, Option], bool]:
    """The options a factory accepts and whether it also takes ``**options`` it did not declare."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {name: Option(name) for name in declared}, True
    function = _target(factory)
    options: dict[str, Option] = {}
    open_ended = False
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            open_ended = True
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.POSITIONAL_ONLY) or parameter.name == "self":
            continue
        annotation = parameter.annotation
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        resolved = None if annotation is parameter.empty else _resolve(annotation, function)
        options[parameter.name] = Option(parameter.name, required=parameter.default is parameter.empty,
                                         annotation=resolved, annotation_text="" if resolved is None else text)
    for name in declared:
        options.setdefault(name, Option(name))
    return options, open_ended and not declared


def declared_options(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """Names a spec declares in ``metadata["options"]`` (list or mapping)."""
    value = metadata.get("options") if metadata else None
    if isinstance(value, Mapping):
        return tuple(str(k) for k in value)
    if isinstance(value, list | tuple):
        return tuple(str(k) for k in value)
    return ()


def closest(name: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """The closest candidate names (difflib), best first."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)


def _is_plain(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return isinstance(value, PLAIN_TYPES)


@functools.lru_cache(maxsize=512)
def _adapter(annotation: Any) -> Any:
    from pydantic import ConfigDict, TypeAdapter

    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # an annotation pydantic cannot turn into a schema: accept any value
        return None


def check_value(option: Option, value: Any, *, what: str) -> Any:
    """``value`` converted to the option's type, or a ConfigError saying what is allowed."""
    if option.annotation is None or not _is_plain(value):
        return value
    try:
        adapter = _adapter(option.annotation)
    except TypeError:  # unhashable annotation object
        adapter = None
    if adapter is None:
        return value
    from pydantic import ValidationError

    try:
        converted = adapter.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", str(exc))
        raise ConfigError(f"{what}: option {option.name!r} must be {option.annotation_text}, got {value!r} "
                          f"({reason})") from None
    if isinstance(value, tuple) and isinstance(converted, list):
        return value
    return converted


def check_options(factory: Callable[..., Any], options: Mapping[str, Any], *, what: str,
                  supplied: Collection[str] = (), declared: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validate ``options`` for ``factory`` (see the module docstring); returns them, converted.

    ``supplied`` names parameters core passes itself (``backbone``, ``label_names``, ``weights``): they are
    neither required from the user nor offered in suggestions.
    """
    accepted, open_ended = factory_options(factory, declared)
    user_facing = {name: option for name, option in accepted.items() if name not in supplied}
    result: dict[str, Any] = {}
    for name, value in options.items():
        option = user_facing.get(name)
        if option is None:
            if open_ended:
                result[name] = value
                continue
            names = sorted(user_facing)
            near = closest(str(name), names)
            hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
            listing = ", ".join(names) if names else "none"
            raise ConfigError(f"{what} has no option {name!r}{hint} Its options: {listing}")
        result[name] = check_value(option, value, what=what)
    for name, option in user_facing.items():
        if not option.required:
            continue
        if name not in result:
            raise ConfigError(f"{what} needs the option {name!r}")
        if isinstance(result[name], str) and not result[name].strip():
            raise ConfigError(f"{what}: option {name!r} must not be empty")
    return result


def option_names(factory: Callable[..., Any], *, supplied: Collection[str] = (),
                 declared: tuple[str, ...] = ()) -> list[str]:
    """The user-facing option names of a factory (for help texts and ``polygraft list``)."""
    accepted, _ = factory_options(factory, declared)
    return sorted(name for name in accepted if name not in supplied)


def check_fraction(value: float, *, name: str, what: str) -> float:
    """``value`` if it is a fraction in [0, 1) (a dropout rate, label smoothing), else a ConfigError saying so.

    Example:
        >>> check_fraction(0.1, name="dropout", what="task 'classification'")
        0.1
    """
    if not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{what}: {name} must be in [0, 1), got {value!r}")
    return float(value)
