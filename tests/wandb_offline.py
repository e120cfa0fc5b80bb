"""Read a W&B offline run folder back without wandb's network or `wandb sync`: what the tests use to
check what training logged (the `.wandb` file is a LevelDB-log framed stream of protobuf records)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

_WANDB_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
_BLOCK = 32768  # LevelDB log format: 32 KiB blocks of records with a 7-byte header
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def iter_wandb_records(path: str | os.PathLike):
    """Yield the protobuf `Record`s of a `.wandb` file (LevelDB-log framing; CRCs not checked)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _version = _WANDB_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: not a W&B data file")
    pos, pending = _WANDB_HEADER.size, b""
    while pos + 7 <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < 7:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:
            pos += left_in_block  # zero padding (preallocated / partly written block)
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            pending = b""
            payload = chunk
        elif kind == _FIRST:
            pending = chunk
            continue
        elif kind == _MIDDLE:
            pending += chunk
            continue
        elif kind == _LAST:
            payload, pending = pending + chunk, b""
        else:
            break  # unknown framing: stop rather than misparse
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def read_offline_run(run_dir: str | os.PathLike) -> dict:
    """Decode `<dir>/wandb/offline-run-*/run-*.wandb`: {"run_id", "name", "group", "config",
    "history" (one dict per logged step, with "_step"), "summary"}; values JSON-decoded. Also
    "records" (how many of each record type, for a failure message) and "complete" (the `exit`
    record that `run.finish` writes last is there)."""
    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb in {run_dir}")
    out = {"run_id": None, "name": None, "group": None, "config": {}, "history": [], "summary": {}, "records": {}}

    def items(update) -> dict:
        res = {}
        for item in update:
            key = item.key or "/".join(item.nested_key)
            res[key] = json.loads(item.value_json)
        return res

    for record in iter_wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        out["records"][kind] = out["records"].get(kind, 0) + 1
        if kind == "run":
            out["run_id"], out["name"], out["group"] = record.run.run_id, record.run.display_name, record.run.run_group
            out["config"].update(items(record.run.config.update))
        elif kind == "config":
            out["config"].update(items(record.config.update))
        elif kind == "history":
            out["history"].append(items(record.history.item))
        elif kind == "summary":
            out["summary"].update(items(record.summary.update))
    out["complete"] = "exit" in out["records"]
    # W&B stores config values as {"value": v, "desc": ...}; unwrap ours, keep its own keys apart
    out["config"] = {
        k: (v["value"] if isinstance(v, dict) and "value" in v else v)
        for k, v in out["config"].items()
        if k != "_wandb"
    }
    return out
