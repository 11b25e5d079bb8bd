"""Read W&B offline run files (`run-<id>.wandb`) back: the test oracle for what vecpg
logged. The files are a LevelDB-style log (32 KiB blocks of [crc32, length, type]
chunks) of `wandb_internal_pb2.Record` protobufs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7  # the file starts with ":W&B" + 3 version bytes; records use 7-byte headers


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", path
    out, pos, chunk = [], HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pos += HEADER
        if kind == 0 and length == 0:
            pos += (BLOCK - pos % BLOCK) % BLOCK
            continue
        chunk += data[pos : pos + length]
        pos += length
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(chunk)
            out.append(rec)
            chunk = b""
    return out


def offline_runs(wandb_dir: Path) -> dict[str, dict]:
    """{run name: {"group", "config", "history": [row dicts]}} for every offline run."""
    runs = {}
    for f in sorted(Path(wandb_dir).glob("offline-run-*/run-*.wandb")):
        run: dict = {"history": []}
        name = None  # a file with no run record (wandb still writing it) names no run
        for rec in records(f):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                name = rec.run.display_name
                run["group"] = rec.run.run_group
                run["config"] = {u.key: json.loads(u.value_json) for u in rec.run.config.update}
            elif kind == "history":
                run["history"].append(
                    {
                        i.key or "/".join(i.nested_key): json.loads(i.value_json)
                        for i in rec.history.item
                    }
                )
        if name is not None:
            runs[name] = run
    return runs
