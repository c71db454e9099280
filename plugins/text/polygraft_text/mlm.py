"""The ``mlm`` pretraining objective: BERT masked language modelling over a text corpus.

Masking follows BERT: 15% of tokens are chosen (never special tokens or padding); of those 80% become
``[MASK]``, 10% a random token and 10% stay unchanged. With ``whole_word: true`` whole words are chosen, so all
sub-tokens of a word are masked together. Training batches are masked afresh each time; validation batches are
masked with a seed derived from the token ids, so validation loss is comparable between evaluations.

The prediction head is transformers' ``BertOnlyMLMHead`` on the backbone's sequence features, its decoder tied
to the input embeddings as in BERT; ``tie_embeddings: false`` gives the decoder its own matrix. Untied, the input
embedding of a word is trained only where the word occurs: with a tied softmax every prediction pushes all other
words' vectors away from the hidden state, which in a short pretraining run crowds rare words' input vectors into
one direction ("representation degeneration", Gao et al. 2019) and hurts fine-tuning that relies on them.
``export`` (inherited from PretrainingObjective) writes a backbone checkpoint that
``finetune`` accepts as ``weights:``.

Example:
    >>> import torch
    >>> from polygraft_text.mlm import mask_tokens
    >>> ids = torch.tensor([[2, 5, 6, 7, 3]]); words = torch.tensor([[-1, 0, 1, 2, -1]])
    >>> masked, labels = mask_tokens(ids, words, mask_id=4, vocab_size=10, probability=1.0,
    ...                              generator=torch.Generator().manual_seed(0))
    >>> labels.tolist()
    [[-100, 5, 6, 7, -100]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from polygraft.errors import ConfigError
from polygraft.features import Batch
from polygraft.interfaces import DataPipeline, StepOutput
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.objective import PretrainingObjective
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft_text.token_metrics import TokenPredictionMetrics

IGNORE = -100


def mask_tokens(input_ids: torch.Tensor, word_ids: torch.Tensor, *, mask_id: int, vocab_size: int,
                probability: float = 0.15, whole_word: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking. ``word_ids`` is -1 on special tokens and padding (never masked). Returns (inputs, labels)."""
    candidates = word_ids >= 0
    if whole_word:
        words = word_ids.clamp_min(0)
        n_words = int(words.max()) + 1 if words.numel() else 1
        chosen_words = torch.rand((input_ids.shape[0], n_words), generator=generator) < probability
        chosen = torch.gather(chosen_words, 1, words) & candidates
    else:
        chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & candidates
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    roll = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (roll < 0.8)] = mask_id
    random_positions = chosen & (roll >= 0.8) & (roll < 0.9)
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator)
    masked[random_positions] = random_tokens[random_positions]
    return masked, labels


class MaskingPipeline(DataPipeline):
    """Tokenize text, pad per batch, then mask (randomly when training, reproducibly when evaluating)."""

    random_prepare = False  # prepare only preprocesses; the masks are drawn in collate, every batch anew

    def __init__(self, preprocessor: Preprocessor, *, mask_id: int, vocab_size: int, probability: float,
                 whole_word: bool, training: bool) -> None:
        self.preprocessor = preprocessor
        self.mask_id = mask_id
        self.vocab_size = vocab_size
        self.probability = probability
        self.whole_word = whole_word
        self.training = training

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return {"inputs": self.preprocessor(example)}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        inputs = batch["inputs"]
        generator = None
        if not self.training:
            generator = torch.Generator().manual_seed(int(inputs["input_ids"].sum()) % (2**31))
        masked, labels = mask_tokens(inputs["input_ids"], batch["meta"]["word_ids"], mask_id=self.mask_id,
                                     vocab_size=self.vocab_size, probability=self.probability,
                                     whole_word=self.whole_word, generator=generator)
        return {**batch, "inputs": {**inputs, "input_ids": masked}, "labels": labels}


class MaskedLanguageModeling(TokenPredictionMetrics, PretrainingObjective):
    """BERT MLM: cross-entropy on masked positions; metrics: loss, masked-token accuracy, perplexity."""

    def __init__(self, backbone: Backbone, *, mask_probability: float = 0.15, whole_word: bool = False,
                 tie_embeddings: bool = True) -> None:
        super().__init__()
        from transformers import BertConfig
        from transformers.models.bert.modeling_bert import BertOnlyMLMHead

        if not 0.0 < mask_probability < 1.0:
            raise ConfigError(f"mask_probability must be in (0, 1), got {mask_probability}")
        tokenizer = getattr(backbone.preprocessor, "tokenizer", None)
        model = getattr(backbone, "model", None)
        if tokenizer is None or tokenizer.mask_token_id is None or model is None:
            raise ConfigError("mlm needs a text backbone with a Hugging Face model and a tokenizer that has a "
                              "mask token (backbone 'bert')")
        self.backbone = backbone
        source = model.config
        head_config = BertConfig(
            vocab_size=source.vocab_size, hidden_size=backbone.feature_dim,
            hidden_act=getattr(source, "hidden_act", getattr(source, "activation", "gelu")),
            layer_norm_eps=getattr(source, "layer_norm_eps", 1e-12),
        )
        self.head = BertOnlyMLMHead(head_config)
        if tie_embeddings:
            self.head.predictions.decoder.weight = model.get_input_embeddings().weight
        self.mask_id = int(tokenizer.mask_token_id)
        self.vocab_size = int(source.vocab_size)
        self.mask_probability = mask_probability
        self.whole_word = whole_word
        self.reset_metrics()

    def data_pipeline(self, *, training: bool) -> MaskingPipeline:
        return MaskingPipeline(self.backbone.preprocessor, mask_id=self.mask_id,
                               vocab_size=len(self.backbone.preprocessor.tokenizer),
                               probability=self.mask_probability, whole_word=self.whole_word, training=training)

    def forward(self, batch: Batch) -> StepOutput:
        features = self.backbone(batch["inputs"])
        labels = batch["labels"]
        selected = labels != IGNORE
        hidden = features.sequence[selected]  # only masked positions go through the vocabulary projection
        logits = self.head(hidden)
        target = labels[selected]
        loss = F.cross_entropy(logits.float(), target) if target.numel() else features.sequence.sum() * 0.0
        return StepOutput(loss=loss, outputs={"logits": logits, "target": target})

    def compute_metrics(self) -> dict[str, float]:
        """``mlm_loss`` (nats per masked token), ``mlm_accuracy``, ``perplexity``; summed over ranks under
        torch.distributed (a collective then: every rank must call it)."""
        loss_sum, correct, count = self.token_totals()
        if not count:
            return {}
        loss = loss_sum / count
        return {"mlm_loss": loss, "mlm_accuracy": correct / count,
                "perplexity": float(torch.exp(torch.tensor(min(loss, 50.0))))}

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """For each masked position: the top token and its probability."""
        features = self.backbone(batch["inputs"])
        tokenizer = self.backbone.preprocessor.tokenizer
        results = []
        for row in range(features.sequence.shape[0]):
            ids = batch["inputs"]["input_ids"][row]
            positions = (ids == self.mask_id).nonzero().flatten().tolist()
            filled = []
            for pos in positions:
                probs = torch.softmax(self.head(features.sequence[row, pos]).float(), dim=-1)
                best = int(probs.argmax())
                filled.append({"position": pos, "token": tokenizer.convert_ids_to_tokens(best),
                               "score": float(probs[best])})
            results.append({"masks": filled})
        return results
