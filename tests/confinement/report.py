"""The per-class impact table and the routine success rate, printed at the end of the session."""

from __future__ import annotations

from collections import Counter


def class_table(attacks: list[dict]) -> list[str]:
    from attacks import CLASSES  # noqa: PLC0415

    total, impact, blocked, ran = Counter(), Counter(), Counter(), Counter()
    for r in attacks:
        total[r["cls"]] += 1
        impact[r["cls"]] += bool(r["impacts"])
        blocked[r["cls"]] += r["verdict"] in ("blocked", "refused")
        ran[r["cls"]] += r["verdict"] in ("executed", "accepted")
    lines = [f"{'class':<15} {'attacks':>7} {'blocked':>8} {'ran':>5} {'IMPACT':>7}"]
    for cls in CLASSES:
        if total[cls]:
            lines.append(f"{cls:<15} {total[cls]:>7} {blocked[cls]:>8} {ran[cls]:>5} {impact[cls]:>7}")
    lines.append(f"{'total':<15} {sum(total.values()):>7} {sum(blocked.values()):>8} {sum(ran.values()):>5} "
                 f"{sum(impact.values()):>7}")
    return lines


def impact_details(attacks: list[dict], width: int = 400) -> list[str]:
    lines = []
    for r in attacks:
        if not r["impacts"]:
            continue
        last = r["responses"][-1] if r["responses"] else {}
        out = (last.get("stdout") or last.get("text") or "").replace("\n", "\\n")[:width]
        err = (last.get("stderr") or "").replace("\n", "\\n")[:200]
        lines.append(f"#{r['id']} [{r['cls']}] {r['verdict']}: {r['request'][:300]!r}")
        lines.append(f"    impact: {'; '.join(r['impacts'])}")
        lines.append(f"    output: {out!r}" + (f" stderr: {err!r}" if err else ""))
    return lines


def summary_lines(results: dict) -> list[str]:
    lines: list[str] = []
    attacks = results.get("attacks") or []
    if attacks:
        lines.append(f"ATTACKS: {len(attacks)} sent for real, {sum(bool(r['impacts']) for r in attacks)} with impact")
        lines += class_table(attacks)
        lines += impact_details(attacks)
    routine = results.get("routine") or []
    if routine:
        ok = [r for r in routine if r["ok"]]
        lines.append(f"ROUTINE: {len(ok)}/{len(routine)} succeeded confined ({100 * len(ok) / len(routine):.1f} %)")
        for r in routine:
            if not r["ok"]:
                lines.append(f"  FAILED {r['command']!r}: status {r['status']} exit {r.get('exit_code')} "
                             f"{(r.get('rule') or '')} {(r.get('reason') or '')} stderr={(r.get('stderr') or '')[:300]!r}")
        for r in routine:
            if r.get("show"):
                lines.append(f"  note {r['command']!r} printed: {(r.get('stdout') or '')[:400]!r}")
    if results.get("timings"):
        lines.append("timings: " + ", ".join(f"{k}={v}" for k, v in results["timings"].items()))
    return lines
