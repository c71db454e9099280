"""The fused preprocessor: every branch's own preprocessing over its fields, and a presence mask per branch.

``__call__`` prepares one example: for each branch present in it, the branch's preprocessor output (or, for a
branch whose preprocessing is random or undeclared, its raw fields: those are prepared in ``collate``, so they stay
random every batch). That makes preparation deterministic as a whole, so the trainer's input cache keeps what the
deterministic branches prepared (tokens, spectrograms) across epochs while augmented branches are redone.
``collate`` gives ``{"present": {name: (B,) bool}, "branches": {name: that branch's batch}}``: a branch's batch
holds only the examples that have it, in order; a branch no example of the batch has is left out.

Example:
    >>> from polygraft.builtin.toy import VectorPreprocessor
    >>> from polygraft.fusion.branches import FieldMap
    >>> from polygraft.fusion.preprocess import BranchInput, FusionPreprocessor
    >>> pre = FusionPreprocessor([BranchInput("a", FieldMap(("a",), None, "x"), VectorPreprocessor(2)),
    ...                           BranchInput("b", FieldMap(("b",), None, "x"), VectorPreprocessor(3))])
    >>> batch = pre.collate([pre({"a": [1.0, 2.0], "b": [0.0, 1.0, 2.0]}), pre({"a": [3.0, 4.0]})])
    >>> batch["present"]["b"].tolist(), batch["branches"]["b"]["x"].shape
    ([True, False], torch.Size([1, 3]))
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from polygraft.errors import ConfigError, DataError
from polygraft.fingerprint import digest
from polygraft.fusion.branches import FieldMap, is_missing
from polygraft.interfaces import Preprocessor
from polygraft.options import closest

if TYPE_CHECKING:
    from polygraft.interfaces import Callback


@dataclass(frozen=True)
class BranchInput:
    """One branch's part of the fused preprocessing: its name, how it reads fields, its own preprocessor."""

    name: str
    fields: FieldMap
    preprocessor: Preprocessor

    @property
    def deferred(self) -> bool:
        """Prepared per batch in ``collate`` (random or undeclared preprocessing), not kept by the input cache."""
        return self.preprocessor.deterministic is not True


class FusionPreprocessor(Preprocessor):
    """Per-branch preprocessing of a fused example (see the module docstring)."""

    input_key = "fields"
    deterministic = True  # random and undeclared branches are prepared in collate, so __call__ is a function

    def __init__(self, branches: Sequence[BranchInput]) -> None:
        self.branches = list(branches)
        self._pending: tuple[int, dict[str, list[Any]]] | None = None  # collate's prepared deferred items

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pending": None}

    # ------------------------------------------------------------------------------------------ fields
    def field_names(self) -> list[str]:
        """Every field some branch reads, in branch order."""
        names: list[str] = []
        for branch in self.branches:
            names += [name for name in branch.fields.fields if name not in names]
        return names

    def branch(self, name: str) -> BranchInput:
        for branch in self.branches:
            if branch.name == name:
                return branch
        raise KeyError(name)

    # ------------------------------------------------------------------------------------------ one example
    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        prepared: dict[str, Any] = {}
        for branch in self.branches:
            raw = branch.fields.extract(example)
            if raw is not None:
                prepared[branch.name] = raw if branch.deferred else branch.preprocessor(raw)
        if not prepared:
            raise DataError(f"every field is missing: none of {self.field_names()} has a value, and an example needs "
                            "at least one (drop the row, or pass skip_invalid: true to the dataset)",
                            path=example.get("_origin"))
        return prepared

    # ------------------------------------------------------------------------------------------ batches
    def _rows(self, items: Sequence[Mapping[str, Any]], branch: BranchInput) -> list[int]:
        return [index for index, item in enumerate(items) if branch.name in item]

    def _inputs(self, items: Sequence[Mapping[str, Any]], branch: BranchInput, rows: list[int]) -> list[Any]:
        chosen = [items[index][branch.name] for index in rows]
        return [branch.preprocessor(raw) for raw in chosen] if branch.deferred else chosen

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``{"present": {name: (B,) bool}, "branches": {name: batch of the examples that have it}}``."""
        if not items:
            raise ValueError("cannot collate an empty batch")
        branches: dict[str, Any] = {}
        present: dict[str, torch.Tensor] = {}
        deferred: dict[str, list[Any]] = {}
        for branch in self.branches:
            rows = self._rows(items, branch)
            mask = torch.zeros(len(items), dtype=torch.bool)
            mask[rows] = True
            present[branch.name] = mask
            if rows:
                inputs = self._inputs(items, branch, rows)
                if branch.deferred:
                    deferred[branch.name] = inputs
                branches[branch.name] = branch.preprocessor.collate(inputs)
        self._pending = (id(items), deferred)
        return {"present": present, "branches": branches}  # present first: it tells the batch size

    def collate_meta(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``{"present": {name: mask}, "branches": {name: that branch's own meta}}`` (the branch callbacks read it)."""
        pending = self._pending[1] if self._pending is not None and self._pending[0] == id(items) else {}
        self._pending = None
        present: dict[str, torch.Tensor] = {}
        metas: dict[str, Any] = {}
        for branch in self.branches:
            rows = self._rows(items, branch)
            mask = torch.zeros(len(items), dtype=torch.bool)
            mask[rows] = True
            present[branch.name] = mask
            if rows and type(branch.preprocessor).collate_meta is not Preprocessor.collate_meta:
                inputs = pending.get(branch.name) or self._inputs(items, branch, rows)
                meta = branch.preprocessor.collate_meta(inputs)
                if meta:
                    metas[branch.name] = dict(meta)
        return {"present": present, "branches": metas}

    def lengths(self, examples: Sequence[Mapping[str, Any]]) -> list[int] | None:
        """The summed compute size of each raw example over the branches whose preprocessors know theirs (for
        ``trainer.group_by_length``), or ``None`` when none does."""
        totals = [0] * len(examples)
        known = False
        for branch in self.branches:
            rows = [(i, raw) for i, raw in enumerate(branch.fields.extract(examples[i]) for i in range(len(examples)))
                    if raw is not None]
            sizes = branch.preprocessor.lengths([raw for _, raw in rows]) if rows else None
            if sizes is None:
                continue
            known = True
            for (index, _), size in zip(rows, sizes):
                totals[index] += int(size)
        return totals if known else None

    def length_of(self, inputs: Mapping[str, Any]) -> int | None:
        """The summed compute size of the branches that know theirs (tokens + frames), or ``None``."""
        sizes = [branch.preprocessor.length_of(inputs[branch.name]) for branch in self.branches
                 if branch.name in inputs and not branch.deferred]
        known = [int(size) for size in sizes if size is not None]
        return sum(known) if known else None

    def callbacks(self) -> list[Callback]:
        """Each branch's counters, scoped to that branch (``val/text_truncated_examples``, distinct checkpoint keys)."""
        from polygraft.fusion.scoped import BranchCallback

        return [BranchCallback(branch.name, callback, scope_batch=True)
                for branch in self.branches for callback in branch.preprocessor.callbacks()]

    # ------------------------------------------------------------------------------------------ training
    def fit(self, examples: Sequence[Mapping[str, Any]]) -> None:
        """Check the data's declared fields against the branches, then fit each branch that fits (a scaler,
        a vocabulary) on its present examples."""
        declared = declared_fields(examples)
        if declared is not None:
            self.check_fields(declared)
        for branch in self.branches:
            if type(branch.preprocessor).fit is Preprocessor.fit:
                continue
            rows = [raw for raw in (branch.fields.extract(examples[i]) for i in range(len(examples)))
                    if raw is not None]
            if not rows:
                raise DataError(f"branch {branch.name!r}: no training example has its fields {list(branch.fields.fields)}, "
                                "so its preprocessing cannot be fitted")
            branch.preprocessor.fit(rows)

    def check_fields(self, declared: Mapping[str, str]) -> None:
        """A field no branch reads, or a branch field the data lacks, is a ConfigError naming it."""
        read = self.field_names()
        for branch in self.branches:
            for name in branch.fields.fields:
                if name not in declared:
                    near = closest(name, list(declared), n=1)
                    hint = f" (did you mean {near[0]!r}?)" if near else ""
                    raise ConfigError(f"branch {branch.name!r} reads field {name!r}, which the training data does not "
                                      f"have{hint}; its fields are {dict(declared)}")
        unread = [name for name in declared if name not in read]
        if unread:
            raise ConfigError(f"field {unread[0]!r} ({declared[unread[0]]}) of the training data is read by no branch: "
                              "add it to a branch's fields, or leave it out of the dataset's columns "
                              f"(branches read {read})")

    def for_training(self, **augment: Any) -> FusionPreprocessor:
        """Each branch's training variant (``augment: true``), or only the named ones: ``augment: {image: true,
        audio: {noise: true}}`` (a mapping gives that branch's own augmentation options)."""
        names = [branch.name for branch in self.branches]
        for name in augment:
            if name not in names:
                near = closest(name, names, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ConfigError(f"augment: {name!r} is not a branch{hint} With fusion, augment is true or a mapping "
                                  f"branch → true / options; branches: {names}")
        chosen = []
        for branch in self.branches:
            setting = augment.get(branch.name, not augment)
            if setting is False or setting is None:
                chosen.append(branch)
                continue
            options = dict(setting) if isinstance(setting, Mapping) else {}
            chosen.append(BranchInput(branch.name, branch.fields, branch.preprocessor.for_training(**options)))
        return FusionPreprocessor(chosen)

    # ------------------------------------------------------------------------------------------ prediction
    def read_input(self, value: str) -> dict[str, Any]:
        """A JSON object of fields (``{"photo": "cat.png", "caption": "a cat"}``: one line of ``polygraft predict
        RUN -``); any field may be left out."""
        try:
            fields = json.loads(value)
        except json.JSONDecodeError:
            fields = None
        if not isinstance(fields, dict):
            raise ConfigError(f"a fused model reads named fields {self.field_names()}: give --field NAME=VALUE for each "
                              f"field you have, or a JSON object per input line; got {value[:80]!r}")
        return self.read_fields({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()
                                 if v is not None})

    def read_fields(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """``polygraft predict RUN --field photo=cat.png --field caption="a cat"``: each branch reads its own
        fields (its preprocessor's ``read_input``/``read_fields``: an image path is opened); fields left out are
        missing, and the model uses its learned "missing" embedding for their branches."""
        known = self.field_names()
        for name in fields:
            if name not in known:
                near = closest(name, known, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ConfigError(f"--field {name}: no branch reads a field of that name{hint} Fields: {known}")
        example: dict[str, Any] = {}
        for branch in self.branches:
            given = {name: fields[name] for name in branch.fields.fields if name in fields
                     and not is_missing(fields[name])}
            if given:
                example.update(_read_branch_fields(branch, given))
        return example

    # ------------------------------------------------------------------------------------------ identity
    def describe(self) -> dict[str, Any]:
        return {"type": "fusion", "branches": {
            branch.name: {"fields": _fields_option(branch.fields), "preprocessing": branch.preprocessor.describe()}
            for branch in self.branches}}

    def fingerprint(self) -> str | None:
        parts = []
        for branch in self.branches:
            inner = "prepared in collate" if branch.deferred else branch.preprocessor.fingerprint()
            if inner is None:
                return None
            parts.append([branch.name, list(branch.fields.fields), list(branch.fields.keys or []),
                          branch.fields.input_key, type(branch.preprocessor).__qualname__, inner])
        return digest(["fusion", parts])


def _fields_option(fields: FieldMap) -> Any:
    return dict(zip(fields.fields, fields.keys)) if fields.keys is not None else list(fields.fields)


def _read_branch_fields(branch: BranchInput, given: Mapping[str, str]) -> dict[str, Any]:
    """Command-line values of one branch's fields → those fields' raw values."""
    pre, fields = branch.preprocessor, branch.fields
    if len(fields.fields) == 1 and fields.branch_key(fields.fields[0]) == pre.input_key:
        name = fields.fields[0]
        raw = dict(pre.read_input(given[name]))
        raw.pop("_origin", None)
        value = raw.get(pre.input_key) if set(raw) == {pre.input_key} else raw
        return {name: value}
    read = dict(pre.read_fields({fields.branch_key(name): value for name, value in given.items()}))
    return {name: read.get(fields.branch_key(name), value) for name, value in given.items()}


def declared_fields(source: Any) -> dict[str, str] | None:
    """The fields a data source declares (``{name: type}``, as ``multimodal-manifest`` does), looking through
    subset views; ``None`` when it declares none."""
    seen = 0
    while source is not None and seen < 8:
        fields = getattr(source, "fields", None)
        if isinstance(fields, Mapping):
            return {str(k): str(v) for k, v in fields.items()}
        source = getattr(source, "parent", None)
        seen += 1
    return None


__all__ = ["BranchInput", "FusionPreprocessor", "declared_fields"]
