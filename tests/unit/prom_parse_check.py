#!/usr/bin/python3
"""Checks a zernel-scheduler /metrics text with a parser we did not write.

Usage: prom_parse_check.py FILE   (or - for stdin)

Parses with prometheus_client's text-format parser (Debian: python3-prometheus-client)
and checks what the parser alone does not: that every product family is there with its
type (the parser silently turns a sample it cannot place into an "untyped" family), the
label sets, histogram consistency (cumulative buckets, +Inf == _count), the info
metrics, and that page faults are 0. Exits 0 and prints a one-line summary if all is
well, else 1 with the reasons.
"""
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

PHASES = {"data_loading", "gpu_compute", "nccl_collective", "optimizer_step", "unknown"}
KINDS = {"round_trip", "enqueue_to_running", "decision_batch"}
PATHS = {"user", "kernel", "congested", "bypassed", "rescued", "cancelled", "bounced", "exited", "direct"}

# Family name as the parser reports it (counters lose _total) -> (type, label name -> allowed values or None).
EXPECTED = {
    "zernel_scheduler_tasks": ("gauge", {"type": {"total", "ml"}}),
    "zernel_scheduler_decisions": ("counter", {}),
    "zernel_scheduler_phase_transitions": ("counter", {}),
    "zernel_scheduler_phase_tasks": ("gauge", {"phase": PHASES}),
    "zernel_scheduler_phase_time_pct": ("gauge", {"phase": PHASES}),
    "zernel_scheduler_dispatch_latency_seconds": ("histogram", {"kind": KINDS, "phase": PHASES | {"all"}}),
    "zernel_scheduler_dispatches": ("counter", {"path": PATHS}),
    "zernel_scheduler_preempt_kicks": ("counter", {}),
    "zernel_scheduler_grant_preemptions": ("counter", {}),
    "zernel_scheduler_resumed": ("counter", {}),
    "zernel_scheduler_aged": ("counter", {}),
    "zernel_scheduler_sync_wakeups": ("counter", {}),
    "zernel_scheduler_ring_used_bytes": ("gauge", {"ring": {"tasks", "decisions"}}),
    "zernel_scheduler_tasks_waiting": ("gauge", {}),
    "zernel_scheduler_page_faults": ("counter", {"kind": {"minor", "major"}}),
    "zernel_scheduler_policy_info": ("gauge", {"policy": None}),
    "zernel_scheduler_build_info": ("gauge", {"version": None}),
}


def check(text):
    errors = []
    families = {}
    for fam in text_string_to_metric_families(text):
        if fam.name in families:
            errors.append(f"family {fam.name} appears twice (samples out of place?)")
        families[fam.name] = fam

    for name in sorted(set(families) - set(EXPECTED)):
        errors.append(f"unexpected family {name} ({families[name].type})")
    for name, (typ, labels) in EXPECTED.items():
        fam = families.get(name)
        if fam is None:
            errors.append(f"missing family {name}")
            continue
        if fam.type != typ:
            errors.append(f"{name}: type {fam.type}, expected {typ}")
        if not fam.samples:
            errors.append(f"{name}: no samples")
        for s in fam.samples:
            got = {k: v for k, v in s.labels.items() if k != "le"}
            if set(got) != set(labels):
                errors.append(f"{s.name}{s.labels}: labels {sorted(got)}, expected {sorted(labels)}")
                continue
            for k, allowed in labels.items():
                if allowed is not None and got[k] not in allowed:
                    errors.append(f"{s.name}: {k}={got[k]!r} not one of {sorted(allowed)}")
            if math.isnan(s.value) or (typ != "gauge" and s.value < 0):
                errors.append(f"{s.name}{s.labels}: bad value {s.value}")

    def samples_of(name):
        return families[name].samples if name in families else []

    for s in samples_of("zernel_scheduler_page_faults"):
        if s.value != 0:
            errors.append(f"page faults {s.labels}: {s.value}, must be 0")
    for info in ("zernel_scheduler_policy_info", "zernel_scheduler_build_info"):
        for s in samples_of(info):
            if s.value != 1:
                errors.append(f"{info}{s.labels}: {s.value}, expected 1")

    hist = families.get("zernel_scheduler_dispatch_latency_seconds")
    series = 0
    if hist is not None:
        by_series = {}
        for s in hist.samples:
            key = (s.labels.get("kind"), s.labels.get("phase"))
            by_series.setdefault(key, []).append(s)
        for (kind, phase), samples in sorted(by_series.items()):
            series += 1
            buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
            count = [s.value for s in samples if s.name.endswith("_count")]
            total = [s.value for s in samples if s.name.endswith("_sum")]
            where = f"latency kind={kind} phase={phase}"
            if len(count) != 1 or len(total) != 1:
                errors.append(f"{where}: needs one _count and one _sum")
                continue
            if not buckets or buckets[-1][0] != math.inf:
                errors.append(f"{where}: last bucket is not le=+Inf")
                continue
            les = [le for le, _ in buckets]
            if les != sorted(les) or len(set(les)) != len(les):
                errors.append(f"{where}: le bounds not strictly increasing")
            values = [v for _, v in buckets]
            if values != sorted(values):
                errors.append(f"{where}: bucket counts not cumulative: {values}")
            if values[-1] != count[0]:
                errors.append(f"{where}: +Inf bucket {values[-1]} != _count {count[0]}")
        for kind in KINDS:
            if (kind, "all") not in by_series:
                errors.append(f"latency kind={kind} phase=all missing")

    if errors:
        for e in errors:
            print("prom_parse_check: " + e)
        return 1
    samples = sum(len(f.samples) for f in families.values())
    print(f"prom_parse_check: ok: {len(families)} families, {samples} samples, {series} latency series")
    return 0


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    text = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1], encoding="utf-8").read()
    try:
        return check(text)
    except Exception as e:  # the parser raises ValueError, and sometimes others, on malformed text
        print(f"prom_parse_check: parse error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
