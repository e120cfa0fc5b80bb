"""Resolvers that need nothing but a validated config dict: the scale's block, corpus names and
tokenizer settings, run ids, study kinds and the roots of the results layout.

They sit below workflow.config (which validates config and expands studies into runs) so that the
study and data modules config.py calls can use them without importing config.py back.
"""

from __future__ import annotations

from workflow.layout import Layout


def scale_config(config: dict) -> dict:
    return config["scales"][config["scale"]]


def study_train(config: dict, study: str, scale: str | None = None) -> dict:
    """The train block every run of `study` starts from at `scale` (default: the selected one): the
    scale's `train`, then the study's `train.<scale>` overrides (a run's own keys go on top later)."""
    scale = scale or config["scale"]
    return {**config["scales"][scale]["train"], **config["studies"][study].get("train", {}).get(scale, {})}


def results_root(config: dict) -> str:
    return Layout.of(config).results


def logs_root(config: dict) -> str:
    return Layout.of(config).logs


def study_kind(config: dict, study: str) -> str:
    """`runs` (listed variants x sizes), `isoflop` (a Chinchilla sweep), `proxy` (architecture design
    by proxy) or `benchmarks` (throughput only): declared by `studies.<study>.kind`, never guessed."""
    return config["studies"][study]["kind"]


def run_id(config: dict, study: str, run: str) -> str:
    return f"{config['scale']}.{study}.{run}"


def corpus_name(config: dict) -> str:
    return scale_config(config)["corpus"]


def data_dir(config: dict, corpus: str | None = None) -> str:
    return Layout.of(config).corpus_dir(corpus or corpus_name(config))


def run_dir(config: dict, study: str, run: str) -> str:
    return Layout.of(config).run_dir(study, run)


def corpus_tokenizer(config: dict, corpus: str | None = None) -> dict:
    """The tokenizer settings of a corpus at this scale: the scale's, with the corpus's own
    `tokenizer` keys on top (e.g. Chinchilla's 32k vocabulary beside the scale's 52k)."""
    corpus = corpus or corpus_name(config)
    return {**scale_config(config)["tokenizer"], **config["corpora"].get(corpus, {}).get("tokenizer", {})}
