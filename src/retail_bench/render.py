"""A bench report as the table `retail-pipeline bench` prints."""

from __future__ import annotations

import statistics
from typing import Any

from .harness import TARGETS


def _spread(values: list[float]) -> str:
    return f"min {min(values):.2f} / median {statistics.median(values):.2f} / max {max(values):.2f}"


def render_readers(report: dict[str, Any]) -> list[str]:
    """The reader variants: wall, CPU and peak RSS per variant, ratios to fastexcel, checks, noise."""
    header = (
        f"{'variant':<17}{'runs':>5}  {'wall s min / median / max':>27}  {'CPU s min / median / max':>26}  "
        f"{'peak MB min / median / max':>28}  {'wall/a':>7}  {'CPU/a':>6}  {'peak/a':>7}"
    )
    lines = [f"workbook {report['workbook']}", header]
    for name, r in report["readers"].items():
        w, c, p = r["wall"], r["cpu"], r["peak_mb"]
        lines.append(
            f"{name:<17}{w['n']:>5}  {w['min']:>8.2f} / {w['median']:>6.2f} / {w['max']:>6.2f}  "
            f"{c['min']:>8.2f} / {c['median']:>6.2f} / {c['max']:>6.2f}  "
            f"{p['min']:>9.1f} / {p['median']:>6.1f} / {p['max']:>6.1f}  "
            f"{r['wall_ratio']:>7.2f}  {r['cpu_ratio']:>6.2f}  {r['peak_ratio']:>7.2f}"
        )
    ingest = report["readers"]["ingest"]
    lines.append(f"ingest/fastexcel wall in the same round: {_spread(ingest['wall_ratio_by_round'])}")
    lines.append(f"ingest/fastexcel CPU in the same round: {_spread(ingest['cpu_ratio_by_round'])}")
    base = report["readers"]["fastexcel"]
    machine = report["machine"]
    lines.append(
        f"noise: fastexcel wall max/min {base['wall']['max'] / base['wall']['min']:.2f}, CPU max/min "
        f"{base['cpu']['max'] / base['cpu']['min']:.2f}; load average {machine['loadavg'][0]} at the start, "
        f"{machine.get('loadavg_end', ['?'])[0]} at the end"
    )
    for key, check in report["checks"].items():
        lines.append(f"{key}: {check['value']:.2f} (target <= {check['target']}) {'OK' if check['ok'] else 'MISSED'}")
    return lines


def render_scale(s: dict[str, Any]) -> list[str]:
    lines = [f"scale x{s['scale']} ({s['rows_per_dataset']:,} rows per dataset, CSV {s['csv_bytes']:,} bytes)"]
    for key in ("ingest_1x_workbook", "ingest_csv", "run_1x", "run_workbooks", "run_csv"):
        r = s[key]
        lines.append(
            f"  {key:<20} {r['wall']:8.2f} s  peak {r['peak_mb']:7.1f} MB"
            + (f"  stages: {', '.join(f'{k} {v:.1f}' for k, v in r['stages'].items())}" if "stages" in r else "")
        )
    for key, value in s["ratios"].items():
        target = TARGETS["scale_csv_peak"] if key == "ingest_csv_peak" else TARGETS["scale_wall"]
        lines.append(f"  {key}: {value:.2f} (target <= {target}) {'OK' if value <= target else 'MISSED'}")
    return lines


def render(report: dict[str, Any]) -> str:
    """The human-readable table of a bench report."""
    m = report["machine"]
    lines = [f"bench {report['date']}  {m['nproc']} CPUs  {m['cpu']}  {m['ram_gb']} GB RAM  load {m['loadavg']}"]
    if report.get("readers"):
        lines += render_readers(report)
    for i, e2e in enumerate(report.get("end_to_end", []), 1):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in e2e["stages"].items())
        lines.append(f"run (end to end) #{i}: {e2e['wall']:.2f} s wall, peak {e2e['peak_mb']:.0f} MB; stages: {stages}")
    if report.get("scale"):
        lines += render_scale(report["scale"])
    return "\n".join(lines)
