"""What `ether bag` does with a recording: info, recover, cat, lineage and a
JSON export for viewers (Foxglove and Lichtblick read json + jsonschema
channels, not msgpack ones).

Exit codes of recover follow the `mcap` CLI's: 0 nothing lost, 3 recovered with
loss (the file's tail was not whole), 1 nothing could be read.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from ._reader import Recording, RecordingFile
from ._writer import Writer

__all__ = ["info", "format_info", "recover", "cat_lines", "lineage_lines", "export_json",
           "jsonable"]


def info(path, *, provenance: bool = False) -> dict:
    """A summary of a recording: per file its status, per topic counts and
    senders, the time span, drops; with provenance, the session's and each
    instance's metadata."""
    with Recording(path) as rec:
        files, topics, senders = [], {}, {}
        start = end = None
        for f in rec.files:
            end_meta = f.meta("ether.recording.end") or {}
            files.append({"path": str(f.path), "status": f.status, "bytes": f.size,
                          "problem": f.problem, "dropped": int(end_meta.get("dropped", 0)),
                          "lost_after_error": int(end_meta.get("lost_after_error", 0))})
        for m in rec.messages():
            t = topics.setdefault(m.topic, {"messages": 0, "senders": set()})
            t["messages"] += 1
            t["senders"].add(m.sender)
            senders.setdefault(m.sender, 0)
            senders[m.sender] += 1
            start = m.log_time_ns if start is None else min(start, m.log_time_ns)
            end = m.log_time_ns if end is None else max(end, m.log_time_ns)
        dropped = rec.dropped()
        by_topic = rec.dropped_by_topic()
        for topic in by_topic:
            topics.setdefault(topic, {"messages": 0, "senders": set()})
        out = {
            "path": str(rec.path), "status": rec.status,
            "complete": rec.status == "complete" and dropped == 0,
            "dropped": dropped, "files": files,
            "start_ns": start, "end_ns": end,
            "duration_s": (end - start) / 1e9 if start is not None else 0.0,
            "messages": sum(t["messages"] for t in topics.values()),
            "topics": {k: {"messages": v["messages"], "senders": sorted(v["senders"]),
                           "dropped": by_topic.get(k, 0)} for k, v in topics.items()},
        }
        if provenance:
            meta = rec.metadata
            out["provenance"] = {"session": meta.get("ether.session"),
                                 "instances": meta.get("ether.instance", []),
                                 "recording": meta.get("ether.recording")}
        return out


def format_info(summary: dict) -> str:
    lines = [f"recording  {summary['path']}"]
    for f in summary["files"]:
        problem = f"  ({f['problem']})" if f["problem"] else ""
        lines.append(f"  file     {f['path']}  {f['bytes']} bytes  {f['status']}{problem}")
    state = "complete" if summary["complete"] else "INCOMPLETE"
    why = []
    if summary["dropped"]:
        why.append(f"{summary['dropped']} dropped")
    if summary["status"] != "complete":
        why.append(f"a file is {summary['status']} (ether bag recover makes it indexed)")
    lines.append(f"status     {state}" + (f": {'; '.join(why)}" if why else ""))
    lines.append(f"messages   {summary['messages']} in {summary['duration_s']:.3f} s")
    width = max((len(t) for t in summary["topics"]), default=5)
    for topic, t in summary["topics"].items():
        drops = f"  {t['dropped']} dropped" if t.get("dropped") else ""
        lines.append(f"  {topic:<{width}}  {t['messages']:>9}  from {', '.join(t['senders'])}{drops}")
    prov = summary.get("provenance")
    if prov:
        session = prov.get("session") or {}
        lines.append("provenance")
        for key in ("run_id", "session", "host", "user", "config_sha256", "pip_freeze_sha256",
                    "version.ether", "version.python", "version.numpy", "argv"):
            if key in session:
                lines.append(f"  {key:<18} {session[key]}")
        for inst in prov.get("instances", []):
            git = (f"{inst.get('git.commit', '')[:12]} {inst.get('git.branch', '')}"
                   f"{' dirty' if inst.get('git.dirty') == 'true' else ''}"
                   if inst.get("git.commit") else inst.get("git.repository", ""))
            lines.append(f"  instance {inst.get('name')}: {inst.get('class_path')} "
                         f"sha256 {str(inst.get('module_sha256'))[:12]} "
                         f"{inst.get('distribution') or ''} {inst.get('version') or ''} {git}")
    return "\n".join(lines)


def recover(path, out) -> tuple[int, str]:
    """Rewrite a (possibly unfinished) file as a complete, indexed one: (exit
    code, what happened)."""
    f = RecordingFile(path)
    try:
        if f.problem and not f.metadata and not f.channels:
            return 1, f"{path}: nothing readable ({f.problem})"
        lost = f.status != "complete" and getattr(f, "_valid_end", f.size) < f.size
        count = 0
        with Writer(os.fspath(out), library="ether bag recover") as w:
            ids = {}
            for name, values in f.metadata:
                w.metadata(name, values)
            for name, media, data in f.attachments:
                w.attachment(name, media, data)
            for cid, seq, log_time, pub, data in f.records():
                if cid not in ids:
                    topic, encoding, meta = f.channels.get(cid, (f"channel-{cid}", "msgpack", {}))
                    ids[cid] = w.channel(topic, encoding=encoding, metadata=meta)
                w.add_bytes(ids[cid], seq, log_time, pub, bytes(data))
                count += 1
        if lost:
            return 3, (f"{path}: recovered {count} messages into {out}; the file was cut at "
                       f"offset {f._valid_end} of {f.size} ({f.problem})")
        return 0, f"{path}: {count} messages, nothing lost; written to {out}"
    finally:
        f.close()


def jsonable(value):
    """A payload value for JSON: arrays as lists (small) or base64 with dtype and shape."""
    import numpy
    if isinstance(value, numpy.ndarray):
        if value.size <= 10000:
            return value.tolist()
        return {"dtype": value.dtype.str, "shape": list(value.shape),
                "base64": base64.b64encode(value.tobytes()).decode()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return value


def _message_dict(m) -> dict:
    return {"topic": m.topic, "sender": m.sender, "seq": m.seq, "time_ns": m.time_ns,
            "log_time_ns": m.log_time_ns, "cause": jsonable(m.cause), "trace": jsonable(m.trace),
            "origin": jsonable(m.origin), "data": jsonable(m.data),
            "replay_of": None if m.replay_of is None else {
                "sender": m.replay_of[1], "seq": m.replay_of[2],
                "run": m.replay_of[0].hex() if m.replay_of[0] else None}}


def cat_lines(path, *, topics=None, start=None, end=None, trial=None, as_json=False):
    with Recording(path) as rec:
        for m in rec.messages(topics, start, end, trial):
            if as_json:
                yield json.dumps(_message_dict(m), default=str)
            else:
                yield f"{m.log_time_ns} {m.topic} {m.sender}:{m.seq} {jsonable(m.data)}"


def lineage_lines(path, topic: str, seq: int, sender=None, *, as_json=False):
    with Recording(path) as rec:
        steps = rec.lineage(rec.find(topic, seq, sender))
        for step in steps:
            m = step.get("message")
            if as_json:
                yield json.dumps({k: (v if k != "message" else (_message_dict(v) if v else None))
                                  for k, v in step.items() if k != "id"} |
                                 {"id": [step["id"][1], step["id"][2]]}, default=str)
                continue
            if m is None:
                yield f"  <- {step['id'][1]}:{step['id'][2]} (not in the recording)"
                continue
            method = f".{step['method']}()" if step.get("method") else ""
            code = f" {step['class_path']}" if step.get("class_path") else ""
            if step.get("git_commit"):
                code += f" @{step['git_commit'][:12]}{'+dirty' if step.get('git_dirty') == 'true' else ''}"
            yield f"{'  <- ' if step is not steps[0] else ''}{m.topic} {m.sender}:{m.seq} by " \
                  f"{step['instance']}{method}{code} {jsonable(m.data)}"


def export_json(path, out) -> int:
    """Write the recording as json + jsonschema channels (one file); the count."""
    schema = json.dumps({"type": "object", "properties": {
        "sender": {"type": "string"}, "seq": {"type": "integer"},
        "time_ns": {"type": "integer"}, "data": {"type": "object"}}}).encode()
    count = 0
    with Recording(path) as rec, Writer(os.fspath(out), library="ether bag export") as w:
        channels = {}
        for m in rec.messages():
            channel = channels.get(m.topic)
            if channel is None:
                sid = w.schema(m.topic, "jsonschema", schema)
                channel = channels[m.topic] = w.channel(m.topic, encoding="json", schema_id=sid)
            body = json.dumps({"sender": m.sender, "seq": m.seq, "time_ns": m.time_ns,
                               "cause": jsonable(m.cause), "trace": jsonable(m.trace),
                               "data": jsonable(m.data)}, default=str).encode()
            w.add_bytes(channel, m.seq, m.log_time_ns, m.time_ns, body)
            count += 1
    return count


def paths_of(path) -> list[Path]:
    path = Path(path)
    return sorted(path.glob("*.mcap")) if path.is_dir() else [path]
