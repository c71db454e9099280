"""The ``clm`` pretraining objective: next-token prediction (GPT's −log p(x)) on the ``gpt2`` backbone.

Every position predicts the token after it, padding excluded: the loss is the mean negative log-likelihood per
predicted token, and validation reports it with the perplexity ``exp(loss)`` and the next-token accuracy, all
summed over tokens (never averaged over batches of different lengths). The output projection is the backbone's
language-model head, tied to its input embeddings, so the run's ``model/`` (a backbone checkpoint that
``finetune`` accepts as ``weights:``) holds the whole language model.

``polygraft predict RUN "the film"`` continues a text with ``transformers``' ``generate``: greedy by default, or
top-k sampling (``top_k`` > 0, with ``temperature`` and a ``seed``), for at most ``max_new_tokens`` tokens or until
the end token. Those objective options are saved with the run as the defaults; one prediction may override them
as fields: ``polygraft predict RUN --field text="the film" --field top_k=20 --field max_new_tokens=40``.

Example:
    >>> import torch
    >>> from polygraft_text.clm import next_token_targets
    >>> ids = torch.tensor([[2, 7, 8, 3, 0]]); mask = torch.tensor([[1, 1, 1, 1, 0]])
    >>> next_token_targets(ids, mask)
    (tensor([[ True,  True,  True, False]]), tensor([[7, 8, 3, 0]]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from polygraft.errors import ConfigError, DataError
from polygraft.features import Batch
from polygraft.interfaces import DataPipeline, StepOutput
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.objective import PretrainingObjective
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft_text.token_metrics import TokenPredictionMetrics

GENERATION_OPTIONS = {"max_new_tokens": int, "top_k": int, "temperature": float, "seed": int}


def next_token_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(valid, targets)`` for positions ``0..T-2``: position ``t`` predicts token ``t+1`` where that is real."""
    return attention_mask[:, 1:].bool(), input_ids[:, 1:]


def generation_settings(values: Mapping[str, Any], defaults: Mapping[str, Any], origin: Any = None) -> dict[str, Any]:
    """The generation options of one prediction: ``defaults`` overridden by the example's fields, checked."""
    settings = dict(defaults)
    for key, kind in GENERATION_OPTIONS.items():
        if key in values:
            try:
                settings[key] = kind(values[key])
            except (TypeError, ValueError):
                raise DataError(f"{key} must be a {kind.__name__}, got {values[key]!r}", path=origin) from None
    if settings["max_new_tokens"] < 1 or settings["top_k"] < 0 or settings["temperature"] <= 0:
        raise ConfigError(f"generation needs max_new_tokens ≥ 1, top_k ≥ 0 (0 = greedy) and temperature > 0, got "
                          f"{settings}")
    return settings


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    """Text of token ids without special tokens, with the usual spaces before punctuation taken out."""
    return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=True)


class NextTokenPipeline(DataPipeline):
    """Tokenize (``<bos> text <eos>``), pad per batch; generation overrides of an example go to ``meta``."""

    random_prepare = False

    def __init__(self, preprocessor: Preprocessor, defaults: Mapping[str, Any]) -> None:
        self.preprocessor = preprocessor
        self.defaults = dict(defaults)

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"inputs": self.preprocessor(example)}
        if any(key in example for key in GENERATION_OPTIONS):
            item["generate"] = generation_settings(example, self.defaults, example.get("_origin"))
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        batch["meta"]["generate"] = [item.get("generate", self.defaults) for item in items]
        return batch


class CausalLanguageModeling(TokenPredictionMetrics, PretrainingObjective):
    """Next-token cross-entropy through the backbone's tied LM head; perplexity; text generation as predict."""

    def __init__(self, backbone: Backbone, *, max_new_tokens: int = 30, top_k: int = 0, temperature: float = 1.0,
                 seed: int = 0) -> None:
        super().__init__()
        if getattr(backbone, "lm_head", None) is None or not hasattr(backbone.preprocessor, "eos_id"):
            raise ConfigError("clm needs a causal language-model backbone with a tied output head and begin/end "
                              "tokens (backbone 'gpt2')")
        self.backbone = backbone
        self.generation = generation_settings({}, {"max_new_tokens": max_new_tokens, "top_k": top_k,
                                                   "temperature": temperature, "seed": seed})
        self.reset_metrics()

    def data_pipeline(self, *, training: bool) -> NextTokenPipeline:
        return NextTokenPipeline(self.backbone.preprocessor, self.generation)

    def forward(self, batch: Batch) -> StepOutput:
        inputs = batch["inputs"]
        features = self.backbone(inputs)
        valid, targets = next_token_targets(inputs["input_ids"], inputs["attention_mask"])
        hidden = features.sequence[:, :-1][valid]  # only real next tokens go through the vocabulary projection
        target = targets[valid]
        logits = self.backbone.lm_head(hidden)
        loss = F.cross_entropy(logits.float(), target) if target.numel() else features.sequence.sum() * 0.0
        return StepOutput(loss=loss, outputs={"logits": logits, "target": target})

    def compute_metrics(self) -> dict[str, float]:
        """``clm_loss`` (nats per predicted token), ``perplexity``, ``token_accuracy``, ``tokens``; summed over
        ranks under torch.distributed (a collective then: every rank must call it)."""
        loss_sum, correct, count = self.token_totals()
        if not count:
            return {}
        loss = loss_sum / count
        return {"clm_loss": loss, "perplexity": float(torch.exp(torch.tensor(min(loss, 50.0)))),
                "token_accuracy": correct / count, "tokens": count}

    def export(self, directory: Any) -> dict[str, Any]:
        """A backbone checkpoint, plus the generation defaults: ``polygraft predict`` rebuilds this objective."""
        return {**super().export(directory), "objective_options": dict(self.generation)}

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Per text: its ``continuation`` (decoded without special tokens), the whole ``text``, the number of new
        ``tokens`` and why generation ``stopped`` (``end`` token or ``max_new_tokens``)."""
        pre = self.backbone.preprocessor
        model = self.backbone.model
        ids, mask = batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"]
        results = []
        for row, settings in enumerate(batch["meta"]["generate"]):
            prompt = ids[row, : int(mask[row].sum())]
            if len(prompt) > 1 and int(prompt[-1]) == pre.eos_id:
                prompt = prompt[:-1]  # continue the text instead of starting after its end
            new = self._generate(model, prompt, settings)
            results.append({
                "continuation": _decode(pre.tokenizer, new),
                "text": _decode(pre.tokenizer, [*prompt.tolist(), *new]),
                "tokens": len(new),
                "stopped": "end" if new and new[-1] == pre.eos_id else "max_new_tokens",
            })
        return results

    def _generate(self, model: Any, prompt: torch.Tensor, settings: Mapping[str, Any]) -> list[int]:
        from transformers import GenerationConfig

        pre = self.backbone.preprocessor
        sample = settings["top_k"] > 0
        config = GenerationConfig(max_new_tokens=settings["max_new_tokens"], do_sample=sample,
                                  top_k=settings["top_k"] if sample else None,
                                  temperature=settings["temperature"] if sample else None, top_p=None,
                                  eos_token_id=pre.eos_id, pad_token_id=pre.pad_token_id, bos_token_id=pre.bos_id)
        devices = [prompt.device.index or 0] if prompt.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(settings["seed"])
            out = model.generate(input_ids=prompt[None], attention_mask=torch.ones_like(prompt)[None],
                                 generation_config=config)
        return out[0, len(prompt):].tolist()
