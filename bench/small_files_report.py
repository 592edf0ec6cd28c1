"""The report of ``bench/small_files.py``: its targets (issue 26's among them), the table and the chart.

``results/small_files.md`` (targets, rows, load), ``results/small_files.json`` (the rows) and
``results/small_files.png``. Targets are checked for every algofs measured in the run: this checkout
(``algofs``), the same on a ``--read-only`` mount (``algofs --read-only``) and ``--baseline-src``'s
(``algofs (baseline)``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import harness as base

#: The system name of the algofs rows measured from ``--baseline-src``.
BASELINE_SYSTEM = "algofs (baseline)"
#: The system name of the algofs rows measured on a ``--read-only`` mount (a data loader's).
READ_ONLY_SYSTEM = "algofs --read-only"


LOADER_COLD = "loader 5000 x 16 KiB, 4 workers shuffled (epoch 1, cold)"
#: The same loader taking its names from an index: no directory is listed by the reader (dir_prefetch.py).
LOADER_INDEX_COLD = "loader 5000 x 16 KiB, 4 workers shuffled, from an index (epoch 1, cold)"
TARGETS = [
    # label, scenario (algofs), scenario (peer), peer, goal, "files/s" or "ratio of seconds"
    ("warm 4 KiB Python loop >= 5,000 files/s", "2000 x 4 KiB serial (warm)", None, None, 5000.0),
    ("warm 4 KiB Python loop, 2nd pass >= 40,000 files/s (issue 26)", "2000 x 4 KiB serial (warm)",
     None, None, 40000.0),
    ("the same, fuse.wake_here = Y (a later warm pass; bench/README.md)",
     "2000 x 4 KiB serial (warm, FUSE wakes here)", None, None, 40000.0),
    ("the same, reader and daemon on one CPU (a later warm pass; bench/README.md)",
     "2000 x 4 KiB serial (warm, one CPU)", None, None, 40000.0),
    ("cold serial <= 0.5x official client serial (loopback)", "2000 x 4 KiB serial (cold)",
     "2000 x 4 KiB serial (cold)", "official client", 0.5),
    ("cold serial <= 0.2x official client serial @20 ms", "2000 x 4 KiB serial (cold) @20 ms",
     "2000 x 4 KiB serial (cold) @20 ms", "official client", 0.2),
    ("cold 4 readers >= 2x official client 4 processes (speed)", "2000 x 4 KiB 4 readers (cold)",
     "2000 x 4 KiB 4 readers (cold)", "official client", 0.5),
    ("cold 4 readers, 10,000 x 16 KiB >= 2x official client 4 processes (issue 26)",
     "10000 x 16 KiB 4 readers (cold)", "10000 x 16 KiB 4 readers (cold)", "official client", 0.5),
    ("loader epoch 1 (cold) >= 2x official client, same workers (issue 26)", LOADER_COLD, LOADER_COLD,
     "official client", 0.5),
    ("the same, names from an index (no walk) >= 2x official client", LOADER_INDEX_COLD, LOADER_COLD,
     "official client", 0.5),
]
#: Shuffled rows whose wasted prefetches (never read) must stay <= 10 % of the files read (issue 26).
WASTE_ROWS = ["2000 x 4 KiB 4 readers (cold)", "10000 x 16 KiB 4 readers (cold)", LOADER_COLD,
              LOADER_INDEX_COLD]
#: Daemon RSS after the many-file row (issue 26: 1,000,000 files).
RSS_GOAL_MIB = 300


def target_lines(results: base.Results) -> list[str]:
    systems = [s for s in ("algofs", READ_ONLY_SYSTEM, BASELINE_SYSTEM)
               if any(r.system == s for r in results.rows)]
    systems = systems or ["algofs"]
    lines = ["| Target | System | Measured | Met |", "|---|---|---|---|"]
    for label, scenario, peer_scenario, peer, goal in TARGETS:
        for system in systems:
            cell = target_cell(results, system, scenario, peer_scenario, peer, goal)
            lines.append(f"| {label} | {system} | {cell}")
    for scenario in WASTE_ROWS:
        for system in systems:
            row = results.get(scenario, system)
            found = re.search(r"(\d+) prefetched never read", row.note) if row else None
            count = int(scenario.split()[1 if scenario.startswith("loader") else 0])
            what = f"wasted prefetches <= 10% of files, {scenario}"
            if row is None or found is None:
                lines.append(f"| {what} | {system} | not measured | - |")
                continue
            share = int(found.group(1)) / count
            lines.append(f"| {what} | {system} | {share:.1%} "
                         f"({found.group(1)} of {count}) | {'yes' if share <= 0.1 else 'no'} |")
    for system in systems:
        rss = results.facts.get(f"many_rss_mib {system}")
        row = next((r for r in results.rows if r.scenario.startswith("walk + read") and r.system == system),
                   None)
        if isinstance(rss, float) and row is not None:
            small = "" if "1000000" in row.scenario else " (N < 1M)"
            met = "yes" if rss <= RSS_GOAL_MIB else "no"
            lines.append(f"| daemon RSS <= {RSS_GOAL_MIB} MiB after {row.scenario} | {system} | "
                         f"{rss:.0f} MiB | {met}{small} |")
    return lines


def target_cell(results: base.Results, system: str, scenario: str, peer_scenario: str | None,
                peer: str | None, goal: float) -> str:
    row = results.get(scenario, system)
    if row is None or not row.seconds:
        return "not measured | - |"
    if peer is None:
        value = row.value or 0.0
        return f"{value:.0f} files/s | {'yes' if value >= goal else 'no'} |"
    other = results.get(peer_scenario or scenario, peer)
    if other is None or not other.seconds:
        return "peer not measured | - |"
    ratio = row.seconds / other.seconds
    return (f"{ratio:.2f}x the time ({row.seconds:.2f} s vs {other.seconds:.2f} s) | "
            f"{'yes' if ratio <= goal else 'no'} |")


def write_report(results: base.Results, started: float, load: list[str], args: argparse.Namespace) -> None:
    base.RESULTS.mkdir(exist_ok=True)
    lines = ["# Small files (bench/small_files.py)", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
             f"{time.time() - started:.0f} s, args `{' '.join(sys.argv[1:])}`.", "",
             "Load (`uptime`) before and after: " + " / ".join(f"`{x}`" for x in load), "",
             "## Targets", "", *target_lines(results), "",
             "## Rows", "", "| Scenario | System | Seconds | files/s or MB/s | Note |",
             "|---|---|---|---|---|"]
    for row in results.rows:
        seconds = "failed" if row.seconds is None else f"{row.seconds:.3f}"
        value = "" if row.value is None else f"{row.value:.0f}"
        lines.append(f"| {row.scenario} | {row.system} | {seconds} | {value} | {row.note} |")
    (base.RESULTS / "small_files.md").write_text("\n".join(lines) + "\n")
    (base.RESULTS / "small_files.json").write_text(json.dumps(
        [row.__dict__ for row in results.rows], indent=1))
    draw_chart(results, base.RESULTS / "small_files.png")


def draw_chart(results: base.Results, target: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [r for r in results.rows if r.seconds and "x" in r.scenario and "KiB" in r.scenario]
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    systems = list(dict.fromkeys(r.system for r in rows))
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(scenarios) + 1.5))
    height = 0.8 / max(len(systems), 1)
    for offset, system in enumerate(systems):
        values = [next((r.value or 0 for r in rows if r.scenario == s and r.system == system), 0)
                  for s in scenarios]
        ax.barh([i + offset * height for i in range(len(scenarios))], values, height, label=system)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(scenarios))], scenarios, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("files/s (log)")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
