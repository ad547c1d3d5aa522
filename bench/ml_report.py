#!/usr/bin/env python3
"""Markdown table of the ML benchmark (bench/vm/ml.sh).

  ml_report.py LOG RAWDIR [--phase-policy NAME]

LOG     console log of bench/vm/ml-guest.sh: "MLRESULT variant=V sched=S round=R steps=..
        seconds=.. steps_per_s=.. data_wait_frac=.. workers=.." lines
RAWDIR  ml-truth-V-S-R.txt ("<tid> <role>") and ml-phases-V-S-R.txt (`zernelctl phases`
        samples: "<tid> <tgid> <phase>" lines, each sample headed "# sample <uptime>")

Classification accuracy, over every sample of every round: a data_loading task is right when
classified data_loading; the trainer when classified optimizer_step or gpu_compute. A task of
the truth file missing from a sample counts as unknown (wrong); a sample listing none of them
(taken as the job exited) is skipped.
"""
import argparse
import glob
import os
import re
import statistics
import sys

SCHEDS = ["alone", "eevdf", "fair", "phase"]
LABELS = {"alone": "EEVDF, job alone", "eevdf": "EEVDF + hogs", "fair": "zernel fair + hogs",
          "phase": "zernel phase + hogs"}
CORRECT = {"data_loading": {"data_loading"}, "trainer": {"optimizer_step", "gpu_compute"}}
PHASES = ["data_loading", "gpu_compute", "nccl_collective", "optimizer_step", "unknown"]
TARGET = 0.9


def results(log):
    rows = {}
    for line in open(log, errors="replace"):
        if not line.startswith("MLRESULT "):
            continue
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        rows.setdefault((kv["variant"], kv["sched"]), []).append(kv)
    return rows


def read_truth(path):
    truth = {}
    for line in open(path, errors="replace"):
        f = line.split()
        if len(f) == 2 and f[0].isdigit():
            truth[int(f[0])] = f[1]
    return truth


def read_samples(path):
    samples, cur = [], None
    for line in open(path, errors="replace"):
        if line.startswith("# sample"):
            cur = {}
            samples.append(cur)
            continue
        f = line.split()
        if cur is not None and len(f) == 3 and f[0].isdigit() and f[1].isdigit():
            cur[int(f[0])] = f[2]
    return samples


def classification(raw, variant, sched):
    """{role: {phase: count}} over all rounds, and the number of samples."""
    conf, nsamples = {}, 0
    for tpath in sorted(glob.glob(os.path.join(raw, f"ml-truth-{variant}-{sched}-*.txt"))):
        ppath = tpath.replace("ml-truth-", "ml-phases-")
        if not os.path.exists(ppath):
            continue
        truth = read_truth(tpath)
        for s in read_samples(ppath):
            if not any(tid in s for tid in truth):
                continue  # the job had exited (a sample still running as it ended)
            nsamples += 1
            for tid, role in truth.items():
                ph = s.get(tid, "unknown")
                conf.setdefault(role, {}).setdefault(ph, 0)
                conf[role][ph] += 1
    return conf, nsamples


def accuracy(conf, role):
    c = conf.get(role)
    if not c:
        return None
    return sum(n for p, n in c.items() if p in CORRECT[role]) / sum(c.values())


def fmt(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"


def pct(v):
    return "-" if v is None else f"{v * 100:.1f}%"


def main(argv):
    ap = argparse.ArgumentParser(description="Markdown table of bench/vm/ml.sh")
    ap.add_argument("log")
    ap.add_argument("raw")
    ap.add_argument("--phase-policy", default="phase")
    a = ap.parse_args(argv[1:])
    log, raw, phase_policy = a.log, a.raw, a.phase_policy
    rows = results(log)
    if not rows:
        print("(no ML results: no MLRESULT lines in the log)")
        return 1
    variants = [v for v in ("cpu", "io") if any(k[0] == v for k in rows)]
    nrounds = max(len(v) for v in rows.values())
    label = dict(LABELS)
    # POLICY+OPTION rows (an option's A/B in one boot) after the fixed ones, in log order.
    scheds = SCHEDS + [s for s in dict.fromkeys(s for _, s in rows) if s not in SCHEDS]
    for s in scheds:
        label.setdefault(s, f"zernel {s.replace('+', ' --', 1)} + hogs")
    if phase_policy != "phase":
        label["phase"] = f"zernel {phase_policy} + bench.toml + hogs (stand-in for phase)"
    out = [f"{nrounds} interleaved rounds in one boot. Steps/s: min / median of the rounds; "
           "ratio = median / median of the job alone under EEVDF. Data wait = share of the "
           "measured time the trainer waited for a batch (the simulated GPU idle for want of "
           f"data), median. Target: >= {TARGET:.0%} of standalone beside the hogs.\n",
           "| variant | scheduler | steps/s min / median | / standalone | target met | data wait | "
           "accuracy data_loading | accuracy trainer | samples |",
           "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    confs = {}
    for v in variants:
        base = rows.get((v, "alone"))
        base_med = statistics.median(float(r["steps_per_s"]) for r in base) if base else None
        for s in scheds:
            rs = rows.get((v, s))
            if not rs:
                continue
            sps = [float(r["steps_per_s"]) for r in rs]
            wait = statistics.median(float(r["data_wait_frac"]) for r in rs)
            med = statistics.median(sps)
            ratio = med / base_med if base_med else None
            met = "-" if s == "alone" or ratio is None else ("yes" if ratio >= TARGET else "no")
            conf, n = classification(raw, v, s)
            if n:
                confs[(v, s)] = (conf, n)
            acc_d, acc_t = accuracy(conf, "data_loading"), accuracy(conf, "trainer")
            out.append(f"| {v} | {label[s]} | {min(sps):.1f} / {med:.1f} | "
                       f"{fmt(ratio, 2) + 'x' if ratio is not None else '-'} | {met} | {wait:.1%} | "
                       f"{pct(acc_d)} | {pct(acc_t)} | "
                       f"{n if n else '-'} |")
    # Where the trainer's step time went (medians over the rounds).
    if any("wake_late_us" in r for rs in rows.values() for r in rs):
        out.append("\nThe trainer's step, medians of the rounds (ms): step = 1 / steps/s; data wait = "
                   "popping a batch; GPU step = the sleep (--step-ms, not shown); wake late = after it, until it ran again; "
                   "optimizer = wall time of the optimizer burst (CPU time --opt-us). io: the "
                   "loaders' mean O_DIRECT read time.\n")
        out.append("| variant | scheduler | step | data wait | wake late after GPU step | optimizer | io read |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for v in variants:
            for s in scheds:
                rs = rows.get((v, s))
                if not rs:
                    continue
                med = lambda k: (statistics.median(float(r[k]) for r in rs) if all(k in r for r in rs) else None)
                step = 1000 / med("steps_per_s")
                wait = step * med("data_wait_frac")
                late, opt, rd = med("wake_late_us"), med("opt_wall_us"), med("read_us")
                out.append(f"| {v} | {s} | {step:.1f} | {wait:.1f} | "
                           f"{'-' if late is None else fmt(late / 1000, 2)} | "
                           f"{'-' if opt is None else fmt(opt / 1000, 2)} | {'-' if rd is None else fmt(rd / 1000, 1)} |")
    if any(s == "phase" for _, s in rows) and not any(s == "phase" for _, s in confs):
        out.append("\n(no `zernelctl phases` samples for the phase rows: the command failed or "
                   "listed none of the job's tasks; see NOTE lines in the log)")
    if confs:
        out.append("\nClassifications behind the accuracy (task-samples per phase, all rounds):\n")
        out.append("| variant | scheduler | role | " + " | ".join(PHASES) + " |")
        out.append("|---|---|---|" + "---:|" * len(PHASES))
        for (v, s), (conf, _) in confs.items():
            for role in ("data_loading", "trainer"):
                c = conf.get(role, {})
                out.append(f"| {v} | {s} | {role} | " + " | ".join(str(c.get(p, 0)) for p in PHASES) + " |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
