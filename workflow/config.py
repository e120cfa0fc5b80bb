"""Load, validate and resolve config.yaml: the one place that turns config into run specs and paths.

The Snakefile calls `validate_config` at load (schema through `snakemake.utils.validate`, then the
cross-references a schema cannot express) and every rule's inputs/params come from the resolvers
below, so the rules hold no logic of their own."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from workflow import smoke
from workflow.data.spec import normalise_spec
from workflow.errors import ScaleDAGError
from workflow.hpc.resources import rule_resource_spec
from workflow.layout import REPO_ROOT, Layout, input_path  # noqa: F401 (re-exported: config's public API)
from workflow.model.gpt import check_parallel, make_model_spec
from workflow.resolve import (  # noqa: F401 (re-exported)
    corpus_name,
    corpus_tokenizer,
    data_dir,
    logs_root,
    results_root,
    run_dir,
    run_id,
    scale_config,
    study_kind,
    study_train,
)
from workflow.schema import SCHEMA_PATH  # noqa: F401 (re-exported)
from workflow.schema import schema as schema_dict
from workflow.studies import proxy
from workflow.studies.design import check_isoflop, check_proxy
from workflow.studies.generators import GENERATORS
from workflow.studies.isoflop import closed_loop_runs, isoflop_plan, params_key

RUN_SEPARATOR = "_"  # run name = <variant>_<shape>
SEED_PREFIX = "s"  # a seeded run is <variant>_<shape>_s<seed>


def seeded_run_name(name: str, seed: int) -> str:
    """`rotary_tiny-1m`, 1234 -> `rotary_tiny-1m_s1234`: the name of one seed of a variant x size."""
    return f"{name}{RUN_SEPARATOR}{SEED_PREFIX}{int(seed)}"


def seed_group(run: str) -> str:
    """The run without its seed suffix (`rotary_tiny-1m_s1234` -> `rotary_tiny-1m`); a name without one
    is its own group. The inverse of `seeded_run_name`, read off the name alone so that report code
    holding only file paths groups seeds the way the config named them."""
    base, sep, seed = run.rpartition(f"{RUN_SEPARATOR}{SEED_PREFIX}")
    return base if sep and seed.isdigit() else run


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
# Study and corpus names: each is one part of a results path and a study is the middle of a run id
# `<scale>.<study>.<run>`, so neither may hold '.', '/' or a space. rules/common.smk builds its
# wildcard constraints from this same pattern, so every name that loads is one the rules match.
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]*"
NAME_RULE = "letters, digits, '_' and '-'; must start with a letter"
# results/<scale>/ holds a folder per study beside these two, so no study may take their names.
RESERVED_STUDY_NAMES = ("data", "benchmarks")


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error) -> str:
    """One line: which key, what was wrong, what was expected."""
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = _key_path(error)
        keys = ", ".join(repr(k) for k in extra)
        hint = f"; expected one of {allowed}" if allowed else ""
        return f"{where}: unknown key {keys}{hint}"
    if v == "enum":
        return f"{_key_path(error)}: {error.instance!r} is not allowed; expected one of {error.validator_value}"
    if v == "const":  # a study's kind that its other keys rule out (zeroshot/bandgap need `runs`)
        return f"{_key_path(error)}: {error.instance!r} does not fit the other keys here; expected {error.validator_value!r}"
    if v == "not" and isinstance(error.instance, dict) and "kind" in error.instance:
        schema = error.validator_value
        banned = [next(iter(alt["required"])) for alt in schema.get("anyOf", [schema]) if "required" in alt]
        extra = [k for k in banned if k in error.instance]
        return f"{_key_path(error)}: {extra} do not belong to a study of kind {error.instance['kind']!r}"
    if v == "type":
        hint = ""
        if error.validator_value == "boolean" and str(error.instance).lower() in ("true", "false"):
            hint = f" (on the command line write --config ...={str(error.instance).capitalize()})"  # Python literals
        return f"{_key_path(error)}: {error.instance!r} has the wrong type; expected {error.validator_value}{hint}"
    if v == "required":
        return f"{_key_path(error)}: {error.message}"
    if v == "oneOf":
        return f"{_key_path(error)}: set exactly one of 'sources' or 'generated'"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{_key_path(error)}: {error.instance!r} is out of range; expected {v} {error.validator_value}"
    return f"{_key_path(error)}: {error.message}"


def schema_validate(config: dict) -> dict:
    """Validate against the JSON schema (filling defaults in place); raise a one-line ScaleDAGError.

    jsonschema directly, as snakemake.utils.validate does it (each `default` set before its
    properties are checked, the first error raised), but on the schema `workflow.schema` already
    read with libyaml: Snakemake's helper re-reads the 52 kB schema through yte, 0.2 s of every
    dry run. Defaults are copied in, so a config changed later cannot change the cached schema."""
    import jsonschema
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, schema)

    filling = validators.extend(Draft202012Validator, {"properties": set_defaults})
    try:
        filling(schema_dict()).validate(config)
    except jsonschema.ValidationError as exc:
        raise ScaleDAGError(f"config: {_describe(exc)}") from None
    return config


def check_names(config: dict) -> None:
    """Study and corpus names the rules' wildcards match; anything else would load, then fail to
    find its inputs with a long MissingInputException instead of one line naming it."""
    for key, kind in (("studies", "study"), ("corpora", "corpus")):
        for name in config[key]:
            if not (isinstance(name, str) and re.fullmatch(NAME_PATTERN, name)):
                raise ScaleDAGError(f"config: {key}: {name!r} is not a valid {kind} name ({NAME_RULE})")
    for name in config["studies"]:
        if name in RESERVED_STUDY_NAMES:
            raise ScaleDAGError(f"config: studies: {name!r} is reserved (results/<scale>/{name}/ holds other outputs)")


def check_references(config: dict) -> None:
    """Cross-references and shape rules a JSON schema cannot express."""
    check_names(config)
    for name, shape in config["shapes"].items():
        if not _NAME.match(name):
            raise ScaleDAGError(f"config: shapes.{name}: shape names use letters, digits, '.' and '-' only")
        if shape["hidden"] % shape["heads"]:
            raise ScaleDAGError(
                f"config: shapes.{name}: hidden ({shape['hidden']}) must be divisible by heads ({shape['heads']})"
            )
    normalised = {}
    for corpus in config["corpora"]:  # what a schema cannot say about sources and splits
        try:
            normalised[corpus] = normalise_spec(corpus_spec(config, corpus))
        except ScaleDAGError as exc:
            raise ScaleDAGError(f"config: corpora.{corpus}: {exc}") from None

    def known_corpus(where: str, corpus: str | None) -> None:
        if corpus and corpus not in config["corpora"]:
            raise ScaleDAGError(
                f"config: {where}: {corpus!r} is not a key of corpora; expected one of {sorted(config['corpora'])}"
            )

    for scale, sc in config["scales"].items():
        known_corpus(f"scales.{scale}.corpus", sc["corpus"])
        tr = sc["train"]
        if tr["global_batch_size"] % tr["micro_batch_size"]:
            raise ScaleDAGError(
                f"config: scales.{scale}.train.global_batch_size ({tr['global_batch_size']}) must be a multiple of micro_batch_size ({tr['micro_batch_size']})"
            )
        tp = sc["parallel"]["tp"]
        for study, st in config["studies"].items():
            for variant, run in st.get("runs", {}).items():
                if is_skipped(run, scale):  # not run here: its corpus need not exist
                    continue
                own = run.get("corpus")
                where = (
                    f"runs.{variant}.corpus" + (f".{scale}" if isinstance(own, dict) else "")
                    if own
                    else f"corpus.{scale}"
                )
                known_corpus(f"studies.{study}.{where}", variant_corpus(st, run, scale))
            language = st.get("language_eval", {}).get(scale)
            if language:
                known_corpus(f"studies.{study}.language_eval.{scale}", language)
                sources = normalised[language]["sources"]
                untagged = [f"sources[{i}]" for i, src in enumerate(sources) if not src.get("tag")]
                if untagged:  # evaluation groups the text by tag: an untagged source would be unreadable
                    raise ScaleDAGError(
                        f"config: studies.{study}.language_eval.{scale}: corpus {language!r} has sources without a `tag`: {untagged}"
                    )
            for workload, w in st.get("benchmarks", {}).items():  # the training workloads' corpora
                known_corpus(f"studies.{study}.benchmarks.{workload}.corpus.{scale}", w.get("corpus", {}).get(scale))
            for shape_name in st.get("sizes", {}).get(scale, []):
                if shape_name not in config["shapes"]:
                    raise ScaleDAGError(
                        f"config: studies.{study}.sizes.{scale}: unknown shape {shape_name!r}; expected one of {sorted(config['shapes'])}"
                    )
                heads = config["shapes"][shape_name]["heads"]
                if heads % tp:
                    raise ScaleDAGError(
                        f"config: scales.{scale}.parallel.tp ({tp}) must divide the heads of shape {shape_name!r} ({heads})"
                    )
    for study, st in config["studies"].items():
        bases = [v for v, run in st.get("runs", {}).items() if not run.get("axis")]
        if len(bases) != 1 and len(bases) < len(st.get("runs", {})):  # an ablation is read against one baseline
            raise ScaleDAGError(
                f"config: studies.{study}.runs: variants that declare an `axis` need exactly one baseline without one; found {bases or 'none'}"
            )
        if len(bases) == 1 and len(st["runs"]) > 1 and st["runs"][bases[0]].get("skip"):
            raise ScaleDAGError(
                f"config: studies.{study}.runs.{bases[0]}.skip: the baseline cannot be skipped (every variant is read against it)"
            )
    evidence = config["scales"][config["scale"]]["evidence"]
    for study, st in config["studies"].items():  # an IsoFLOP sweep's shapes and budgets fail at load, not mid-DAG
        if st["kind"] == "isoflop" and study_at_scale(config, study):
            plan = isoflop_plan(config, study)
            if evidence:  # a scale meant to measure: can this sweep measure the exponent?
                check_isoflop(plan, f"config: studies.{study}.isoflop.{config['scale']}", params_key(st["isoflop"]))
        if st["kind"] == "proxy" and evidence and st["enabled"] and study_at_scale(config, study):
            s = proxy.proxy_settings(config, study)
            tp = config["scales"][config["scale"]]["parallel"]["tp"]
            check_proxy(proxy.enumerate_candidates(s, tp), s, f"config: studies.{study}.proxy.{config['scale']}")
    check_run_shapes(config)


def check_run_shapes(config: dict) -> None:
    """Every (run, shape) of every scale builds: architecture options, GQA/FFN/rotary sizes, TP/PP
    splits, global batch = micro-batch × data-parallel size × accumulation, a budget of >= 1 batch."""
    for scale, sc in config["scales"].items():
        tp, pp = sc["parallel"]["tp"], sc["parallel"]["pp"]
        job = rule_resource_spec(config, "pretrain", scale)
        world = job["nodes"] * job["tasks_per_node"]
        if world % (tp * pp):
            raise ScaleDAGError(
                f"config: scales.{scale}: pretrain's {world} ranks (resources.pretrain nodes × tasks_per_node) are not divisible by tp × pp ({tp} × {pp})"
            )
        dp = world // (tp * pp)
        for study, st in config["studies"].items():
            if not st.get("runs"):
                continue
            train = study_train(config, study, scale)
            where = f"studies.{study}.train.{scale}" if st.get("train", {}).get(scale) else f"scales.{scale}.train"
            if train["global_batch_size"] % (train["micro_batch_size"] * dp):
                raise ScaleDAGError(
                    f"config: {where}: global_batch_size ({train['global_batch_size']}) must be a multiple of "
                    f"micro_batch_size × data-parallel size ({train['micro_batch_size']} × {dp})"
                )
            for shape_name in st.get("sizes", {}).get(scale, []):
                shape = config["shapes"][shape_name]
                if train["tokens"] < train["global_batch_size"] * shape["seq_length"]:
                    raise ScaleDAGError(
                        f"config: {where}.tokens ({train['tokens']:g}) is less than one global batch of shape {shape_name!r} "
                        f"({train['global_batch_size']} × {shape['seq_length']} tokens)"
                    )
                for variant, run in st["runs"].items():
                    if is_skipped(run, scale):
                        continue
                    try:
                        spec = make_model_spec(
                            run["arch"],
                            shape,
                            corpus_tokenizer(config, variant_corpus(st, run, scale))["vocab_size"],
                            run.get("overrides"),
                        )
                        check_parallel(spec, tp, pp)
                    except ScaleDAGError as exc:
                        raise ScaleDAGError(
                            f"config: studies.{study}.runs.{variant} at shape {shape_name!r} (scale {scale}, tp {tp}, pp {pp}): {exc}"
                        ) from None


def validate_config(config: dict) -> dict:
    schema_validate(config)
    smoke.apply(config)  # before the reference checks: they then check what a smoke run will read
    check_references(config)
    return config


def load_config(path: str | Path = "config.yaml", overrides: dict | None = None) -> dict:
    """Read, override and validate a config file outside Snakemake (tests, benchmarks)."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScaleDAGError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ScaleDAGError(f"{path}: expected a mapping at the top level")
    config.update(overrides or {})
    return validate_config(config)


# -- resolvers ------------------------------------------------------------------------------------


def enabled_studies(config: dict) -> list[str]:
    """Enabled studies that have something to do at this scale."""
    return [s for s, st in config["studies"].items() if st["enabled"] and study_at_scale(config, s)]


def study_at_scale(config: dict, study: str) -> bool:
    """Whether a study is declared at the selected scale: a `runs` study lists sizes for it, an
    isoflop or proxy study has an entry for it, a benchmarks study has a workload swept there."""
    st, scale = config["studies"][study], config["scale"]
    kind = study_kind(config, study)
    if kind == "runs":
        return bool(st["sizes"].get(scale))
    if kind == "benchmarks":
        return any(scale in w for w in st["benchmarks"].values() if isinstance(w, dict))
    return scale in st[kind]


def study_runs(config: dict, study: str) -> dict[str, dict]:
    """Run name (<variant>_<shape>[_s<seed>]) -> {variant, arch, overrides, shape_name, [seed, shape,
    train, corpus, axis]}.

    A `runs` study trains each variant x size once, or once per seed of its `seeds.<scale>` (a run
    `<variant>_<shape>_s<seed>` whose train seed sets init and data order); a variant whose
    `skip.<scale>` gives a reason is left out at that scale. A study of kind `isoflop` or `proxy`
    derives its runs in code, registered in `workflow.studies.generators.GENERATORS`; a run may then
    carry an explicit `shape` dict, `train` overrides (e.g. its own token budget) and its own `corpus`.
    """
    st = config["studies"][study]
    if study_kind(config, study) in GENERATORS:
        return GENERATORS[study_kind(config, study)](config, study)
    scale = config["scale"]
    seeds = st.get("seeds", {}).get(scale)
    runs = {}
    for shape_name in st.get("sizes", {}).get(scale, []):  # none in a benchmarks-only study
        for variant, run in st["runs"].items():
            if is_skipped(run, scale):
                continue
            spec = {
                "variant": variant,
                "arch": run["arch"],
                "overrides": dict(run.get("overrides", {})),
                "shape_name": shape_name,
                **({"corpus": corpus} if (corpus := variant_corpus(st, run, scale)) else {}),
                **({"axis": run["axis"]} if run.get("axis") else {}),
            }
            name = f"{variant}{RUN_SEPARATOR}{shape_name}"
            if not seeds:
                runs[name] = spec
            for k in seeds or []:
                runs[seeded_run_name(name, k)] = {**spec, "seed": int(k), "train": {"seed": int(k)}}
    return runs


def padded_vocab_size(vocab_size: int, tp: int) -> int:
    """The embedding's rows: the tokenizer's vocabulary rounded up to a multiple of TP.

    Megatron splits the embedding and output matrices row-wise over the TP ranks and asserts the
    split is even, so GenSLM's 69 codon tokens (64 codons + 5 specials) cannot run at TP=2 as they
    are; 70 rows can, the extra id never occurs in the data, and training pushes its logit down.
    (Megatron-LM's own trainer pads to a multiple of 128 x TP for kernel speed; padding only to TP
    keeps every vocabulary that already splits evenly, e.g. 52,000 and 32,000, unchanged.)"""
    return -(-int(vocab_size) // int(tp)) * int(tp)


def is_skipped(run: dict, scale: str) -> bool:
    """Whether a `runs` variant declares `skip.<scale>` (a reason it does not run at that scale)."""
    return bool(run.get("skip", {}).get(scale))


def skipped_variants(config: dict, study: str) -> dict[str, str]:
    """Variant -> the reason it does not run at the selected scale (`skip.<scale>`)."""
    runs = config["studies"][study].get("runs") or {}
    return {v: r["skip"][config["scale"]] for v, r in runs.items() if is_skipped(r, config["scale"])}


def variant_corpus(st: dict, run: dict, scale: str) -> str | None:
    """The corpus a listed variant trains on: its own (one name, or one per scale), else its study's
    at this scale, else None (the scale's corpus)."""
    own = run.get("corpus")
    if isinstance(own, dict):
        own = own.get(scale)
    return own or st.get("corpus", {}).get(scale)


def trainable_runs(config: dict, study: str) -> dict[str, dict]:
    """`study_runs` plus the runs a study plans while the DAG runs: an IsoFLOP study's closed-loop
    runs, which exist only once its fit has chosen them (rule closed_loop_plan)."""
    runs = study_runs(config, study)
    if study_kind(config, study) == "isoflop":
        runs = {**runs, **closed_loop_runs(config, study)}
    return runs


def trainable_run(config: dict, study: str, run: str) -> dict | None:
    """One entry of `trainable_runs` (the caller's own copy), or None when the study has no such run.

    What each job's input functions need: looking one run up in the generator's shared answer
    rather than copying the whole sweep per job, which made the paper dry run quadratic in the
    number of runs (the 10x sweep: 1,293 jobs, 19.5 s of CPU, 11 s of it copying sweeps)."""
    generate = GENERATORS.get(study_kind(config, study))
    runs = generate.shared(config, study) if hasattr(generate, "shared") else study_runs(config, study)
    if run in runs:
        return copy.deepcopy(runs[run])
    if study_kind(config, study) == "isoflop":
        return closed_loop_runs(config, study).get(run)
    return None


def run_corpus(config: dict, study: str, run: str) -> str:
    """The corpus a run trains on: its own `corpus` if it names one, else the scale's."""
    r = trainable_run(config, study, run)
    if r is None:
        raise ScaleDAGError(f"study {study!r} has no run {run!r} at scale {config['scale']!r}")
    return r.get("corpus") or corpus_name(config)


def corpus_spec(config: dict, corpus: str) -> dict:
    """The spec `workflow.data.corpus` prepares a corpus from (its config entry plus its name; its
    `tokenizer` keys belong to train_tokenizer and `offline_stand_in` to workflow.smoke, not to
    preparing the text)."""
    if corpus not in config["corpora"]:
        raise ScaleDAGError(f"config: corpora: unknown corpus {corpus!r}")
    entry = {k: v for k, v in config["corpora"][corpus].items() if k not in ("tokenizer", "offline_stand_in")}
    return {"name": corpus, **copy.deepcopy(entry)}


def pretrain_spec(config: dict, study: str, run: str) -> dict:
    """The resolved spec `workflow.train.pretrain` runs from (JSON-serialisable)."""
    r = trainable_run(config, study, run)
    if r is None:
        raise ScaleDAGError(
            f"study {study!r} has no run {run!r} at scale {config['scale']!r}; "
            f"expected one of {sorted(trainable_runs(config, study))}"
        )
    sc = scale_config(config)
    ddir = data_dir(config, r.get("corpus"))
    shape = r.get("shape") or config["shapes"][r["shape_name"]]
    return {
        "run_id": run_id(config, study, run),
        "study": study,
        "run": run,
        "arch": r["arch"],
        "arch_overrides": r["overrides"],
        "shape": dict(shape, name=r["shape_name"]),
        "vocab_size": padded_vocab_size(corpus_tokenizer(config, r.get("corpus"))["vocab_size"], sc["parallel"]["tp"]),
        "data": {
            "tokenizer": f"{ddir}/tokenizer.json",
            "train_prefix": f"{ddir}/tokens/train",
            "valid_prefix": f"{ddir}/tokens/valid",
        },
        # scale's train block < the study's per-scale overrides < the run's own (generators)
        "train": smoke.cap_train(config, {**study_train(config, study), **r.get("train", {})}, shape["seq_length"]),
        "parallel": dict(sc["parallel"]),
        "bf16": sc["device"] == "gpu",
        "threads": sc["threads_per_run"],
        "device_peaks": copy.deepcopy(config.get("device_peaks", {})),
        "out_dir": run_dir(config, study, run),
    }
