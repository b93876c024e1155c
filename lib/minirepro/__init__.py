"""Reproducible, executable notebook chapters that re-implement ML papers and check their central claims

Modules:

- `minirepro.core.cli`: `minirepro list | run | report | verify`: list the book, execute chapters headless with papermill, regenerate the status table, and compare a run with the recorded reference.
- `minirepro.core.data`: A registry of synthetic tasks that chapters train and evaluate on. Each generator is deterministic from its seed, returns disjoint train and test splits of prompt/answer examples with the alphabet they need, and knows how to score a model's answers. The first family is arithmetic, in the formats of "Teaching Arithmetic to Small Transformers".
- `minirepro.core.lm`: One model family for the whole book: transformers' `LlamaForCausalLM`, built tiny from a config for training from scratch, and the same class that loads the offline SmolLM2-135M for fine-tuning. Tokenizers are real transformers tokenizers; generation is batched with stop strings; likelihoods score continuations for multiple-choice checks.
- `minirepro.core.repro`: Every chapter begins with one call, `setup(...)`: it reads the book's run settings, picks the chapter's sizes for the requested scale, seeds every random number generator, fixes the thread count and resolves the device.
- `minirepro.core.results`: What a chapter measures becomes a `results.json` with provenance; each pre-registered claim is checked against its fixed threshold; figures are saved as PNG; and a new run is compared with the recorded one, with tolerances.
- `minirepro.core.retrieval`: Everything the book's retrieval chapters share: a synthetic corpus with controlled vocabulary mismatch, a real offline code-search benchmark built from Python's standard library, BM25 through `bm25s`, exact maximum-inner-product search in torch, embedding caches, IR metrics through `ir-measures`, and a two-tower dense retriever trained with InfoNCE and the negative samplers of the dense-retrieval literature.
- `minirepro.core.train`: `train` fits any model on batches of tensors: AdamW, warmup with cosine decay or a one-cycle schedule, gradient clipping, a batch order fixed by the seed, evaluation callbacks, early stopping on a target, and a progress bar only where someone watches. Beside it: the data encodings for language modelling and supervised fine-tuning (loss on answer tokens only), knowledge distillation, DPO, and LoRA through `peft`."""

__version__ = "0.1.0"
