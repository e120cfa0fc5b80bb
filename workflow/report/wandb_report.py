"""A W&B Report per study, built offline with `wandb_workspaces.reports.v2`, published later.

Why offline: the DAG never touches the network. `build` writes the report's specification (the
inputs it is built from + the report object as JSON) to results/<scale>/<study>/report/ and prints
the one command that publishes it once logged in: `wandb sync` of the study's offline runs, then
`python -m workflow.report.wandb_report publish`, which rebuilds the same Report and calls `.save()`.

Contents: loss curves (train and validation) with one run set per variant, grouped by
architecture; throughput (tokens/s, TFLOP/s, MFU) and energy panels; a per-run summary table from
each run's summary.json (energy joules/token, or why it was not measured); every CSV table of the
study as a Markdown table.  Run sets select runs by their config (`run_id`), which `workflow.train.pretrain`
logs, so runs of other scales or studies in the same project never leak in.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
from pathlib import Path

from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.io import atomic_write_json

DEFAULT_PROJECT = "scaledag"
MAX_TABLE_ROWS = 60
LOSS_METRICS = ["train/loss", "valid/loss"]
THROUGHPUT_METRICS = ["train/tokens_per_s", "train/tflops_per_device_chinchilla", "train/mfu_chinchilla"]
ENERGY_METRICS = ["energy/joules_per_token", "energy/joules"]


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def csv_to_markdown(path: str | os.PathLike, max_rows: int = MAX_TABLE_ROWS) -> str:
    """A CSV file as a Markdown table (first `max_rows` rows; says how many were left out)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return f"*{Path(path).name} is empty*"
    header, body = rows[0], rows[1:]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body[:max_rows]]
    if len(body) > max_rows:
        lines.append(f"\n*{len(body) - max_rows} more rows in {Path(path).name}*")
    return "\n".join(lines)


def summary_row(run: str, summary: dict) -> dict:
    """The per-run numbers the report tabulates (energy: joules/token or the reason it is null)."""
    energy = summary.get("energy") or {}
    j_per_token = energy.get("joules_per_token")
    tflops = summary.get("tflops_per_device_chinchilla")
    flops, rate = (summary.get("flops_per_token") or {}).get("chinchilla"), summary.get("train_tokens_per_s")
    if tflops is None and flops and rate:  # achieved FLOP/s per device from the run's own counts
        par = summary.get("parallel") or {}
        devices = par.get("dp", 1) * par.get("tp", 1) * par.get("pp", 1)
        tflops = flops * rate / devices / 1e12
    return {
        "run": run,
        "arch": summary.get("arch"),
        "parameters": summary.get("parameters"),
        "tokens/s": summary.get("train_tokens_per_s"),
        "TFLOP/s (Chinchilla)": tflops,
        "MFU (Chinchilla)": summary.get("mfu_chinchilla"),
        "peak memory (MB)": summary.get("peak_memory_mb"),
        "J/token": j_per_token if j_per_token is not None else f"n/a ({energy.get('reason') or 'not recorded'})",
    }


def summary_markdown(rows: list[dict]) -> str:
    if not rows:
        return "*no runs*"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in header) + " |" for r in rows]
    return "\n".join(lines)


def build_report(inputs: dict):
    """The wandb_workspaces Report for one study; `inputs` is the JSON-able spec (see `report_inputs`)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    entity, project = inputs["entity"], inputs["project"]
    runsets = [
        wr.Runset(
            entity=entity,
            project=project,
            name=variant,
            filters=expr.filterexpr_list_to_string([expr.Config("run_id").isin(sorted(run_ids))]),
            groupby=["config.arch"],
        )
        for variant, run_ids in sorted(inputs["variants"].items())
    ]
    if not runsets and not inputs["tables"]:
        raise ScaleDAGError(f"study {inputs['study']!r}: no runs and no tables to report")
    loss_panels = [wr.LinePlot(title=m, x="Step", y=[m], smoothing_factor=0.0) for m in LOSS_METRICS]
    loss_panels.append(wr.LinePlot(title="train/loss vs tokens", x="train/tokens", y=["train/loss"]))
    throughput_panels = [wr.LinePlot(title=m, x="Step", y=[m]) for m in THROUGHPUT_METRICS]
    throughput_panels.append(wr.BarPlot(title="train tokens/s (whole run)", metrics=["train_tokens_per_s"]))
    energy_panels = [wr.BarPlot(title=m, metrics=[m]) for m in ENERGY_METRICS]
    if not runsets:  # a benchmarks study (throughput points, no training runs): its tables only
        blocks = [
            wr.H1(text=inputs["title"]),
            wr.P(
                text=f"ScaleDAG study `{inputs['study']}` at scale `{inputs['scale']}`: benchmark points, "
                "no training runs; one table per benchmark, rows labelled with the device they ran on."
            ),
            wr.H2(text="Tables"),
        ]
    else:
        blocks = [
            wr.H1(text=inputs["title"]),
            wr.P(
                text=f"ScaleDAG study `{inputs['study']}` at scale `{inputs['scale']}`: "
                f"{sum(len(v) for v in inputs['variants'].values())} runs, one run set per variant."
            ),
            wr.H2(text="Loss curves"),
            wr.PanelGrid(runsets=runsets, panels=loss_panels),
            wr.H2(text="Throughput"),
            wr.PanelGrid(runsets=runsets, panels=throughput_panels),
            wr.H2(text="Energy"),
            wr.PanelGrid(runsets=runsets, panels=energy_panels),
            wr.MarkdownBlock(text=summary_markdown(inputs["summaries"])),
            wr.H2(text="Tables"),
        ]
    for name, markdown in sorted(inputs["tables"].items()):
        blocks += [wr.H3(text=name), wr.MarkdownBlock(text=markdown)]
    return wr.Report(
        project=project,
        entity=entity,
        title=inputs["title"][:128],
        description=f"ScaleDAG {inputs['scale']}/{inputs['study']}",
        blocks=blocks,
    )


def report_inputs(
    study: str,
    scale: str,
    title: str,
    runs: dict[str, dict],
    summaries: list[str],
    tables: list[str],
    project: str | None = None,
    entity: str | None = None,
) -> dict:
    """Everything the report is built from. `runs`: run name -> {"run_id", "variant"} for every run
    the study may train; the report covers those whose summary is given (a proxy study's full runs
    exist only for the candidates its ranking selected)."""
    by_dir = {Path(p).parent.name: p for p in summaries}
    unknown = sorted(set(by_dir) - set(runs))
    if unknown:
        raise ScaleDAGError(f"study {study!r}: summaries given for runs it does not have: {unknown}")
    runs = {run: info for run, info in runs.items() if run in by_dir}
    variants: dict[str, list[str]] = {}
    for info in runs.values():
        variants.setdefault(info["variant"], []).append(info["run_id"])
    rows = []
    for run in sorted(runs):
        try:
            rows.append(summary_row(run, json.loads(Path(by_dir[run]).read_text())))
        except (OSError, json.JSONDecodeError) as exc:
            raise ScaleDAGError(f"{by_dir[run]}: cannot read run summary ({exc})") from None
    return {
        "study": study,
        "scale": scale,
        "title": title,
        "project": project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
        "entity": entity or os.environ.get("WANDB_ENTITY") or "",
        "variants": variants,
        "summaries": rows,
        "tables": {Path(t).name: csv_to_markdown(t) for t in tables},
    }


def publish_command(spec_path: str | os.PathLike, offline_runs_glob: str) -> str:
    return (
        f"wandb sync {offline_runs_glob} && "
        f"python -m workflow.report.wandb_report publish --spec {shlex.quote(str(spec_path))}"
    )


def write_spec(inputs: dict, out: str | os.PathLike, offline_runs_glob: str) -> str:
    """Build the report offline (validates it), write its spec as JSON; returns the publish command."""
    import wandb_workspaces.reports.v2 as wr
    from pydantic import TypeAdapter

    report = build_report(inputs)
    command = publish_command(out, offline_runs_glob)
    atomic_write_json(
        out, {"inputs": inputs, "publish": command, "report": TypeAdapter(wr.Report).dump_python(report, mode="json")}
    )
    return command


def publish(spec_path: str | os.PathLike, entity: str | None = None, project: str | None = None) -> str:
    """Rebuild the report from its spec and save it to W&B (needs `wandb login`); returns its URL."""
    inputs = json.loads(Path(spec_path).read_text())["inputs"]
    inputs["entity"] = entity or inputs.get("entity") or os.environ.get("WANDB_ENTITY") or ""
    inputs["project"] = project or inputs["project"]
    if not inputs["entity"]:
        raise ScaleDAGError(f"{spec_path}: no W&B entity; pass --entity or set WANDB_ENTITY")
    report = build_report(inputs)
    report.save()
    return report.url


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="W&B report of a study: build offline, publish later")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the report spec (no network)")
    b.add_argument("--study", required=True)
    b.add_argument("--scale", required=True)
    b.add_argument("--title", required=True)
    b.add_argument("--runs", required=True, help='JSON: run name -> {"run_id", "variant"}')
    b.add_argument("--summaries", nargs="*", default=[], help="each run's summary.json (none for a benchmarks study)")
    b.add_argument("--tables", nargs="*", default=[])
    b.add_argument("--offline-runs", required=True, help="glob of the study's offline W&B run folders")
    b.add_argument("--out", required=True)
    p = sub.add_parser("publish", help="save the report to W&B (after `wandb login` and `wandb sync`)")
    p.add_argument("--spec", required=True)
    p.add_argument("--entity", default=None)
    p.add_argument("--project", default=None)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        runs = json_option("--runs", args.runs)
        inputs = report_inputs(args.study, args.scale, args.title, runs, args.summaries, [t for t in args.tables if t])
        command = write_spec(inputs, args.out, args.offline_runs)
        print(f"wrote {args.out}; publish once logged in with:\n{command}")
    else:
        print(publish(args.spec, args.entity, args.project))


if __name__ == "__main__":
    main()
