"""The papers' tables from a results database: per attack, parameter set and swept value, one row per case.

Cases follow the EAD paper: over all incorrect targets of an image, the best case is the least distorted target
(a success if any succeeds), the worst the most distorted (a failure if any fails), the average a random target
fixed by the seed. Distortions are means over successes; ASR is in percent. Only images whose rows are all stored
count, so a table of a run still in progress is a table of its finished images.

Queries (attacks that count them, ZOO; None for white-box ones): ``queries`` is the mean per attacked example over
every stored example behind the case, failures included (what one attack costs; for best / average / worst, all
targets of the case's images, since a case is chosen among them); ``queries_success`` is the mean over the case's
successful examples, the ones its distortions are averaged over.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from typing import Any, Optional

import torch

from advlens.evaluation.store import ResultStore
from attacks.registry import ATTACKS
from interpret.metrics import METRICS, cases_from_distortions, mean_over_success, success_rate

COLUMNS = ("model", "attack", "params", "sweep_param", "sweep_value", "case", "by", "asr", "l0", "l1", "l2", "linf",
           "queries", "queries_success", "n")
SINGLE_CASE = {"random": "random", "next": "next", "least-likely": "least-likely", "untargeted": "untargeted"}


def _ranking_metric(attack: str, params: dict[str, Any]) -> str:
    entry = ATTACKS.get(attack)
    return entry.ranking_metric(params) if entry else "l2"


def case_table(store: ResultStore) -> list[dict[str, Any]]:
    """The rows of the report, in the order they were requested (attack, parameters, swept value, case)."""
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in store.requested():
        groups[(r["model"], r["attack"], r["params"], r["mode"], r["sweep_param"], r["sweep_value"])].append(r)
    table = []
    for (model, attack, params_json, mode, sweep_param, sweep_value), rows in groups.items():
        params = json.loads(params_json)
        by = _ranking_metric(attack, params)
        shown = {k: v for k, v in params.items() if k != sweep_param}
        head = {"model": model, "attack": attack, "params": shown, "sweep_param": sweep_param or None,
                "sweep_value": json.loads(sweep_value) if sweep_value else None, "by": by}
        for case, summary, n in _cases(rows, mode, by):
            table.append({**head, "case": case, **summary, "n": n})
    order = {"best": 0, "average": 1, "worst": 2}
    table.sort(key=lambda t: (t["model"], t["attack"], json.dumps(t["params"], sort_keys=True),
                              t["sweep_param"] or "", _sortable(t["sweep_value"]), order.get(t["case"], 3), t["case"]))
    return table


def _sortable(value: Any) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _counted(rows: list[Any]) -> bool:
    """Whether the attack counted queries (white-box rows store NULL)."""
    return all(r["queries"] is not None for r in rows)


def _mean_queries(rows: list[Any]) -> Optional[float]:
    return sum(float(r["queries"]) for r in rows) / len(rows) if rows and _counted(rows) else None


def _cases(rows: list[Any], mode: str, by: str) -> list[tuple[str, dict[str, Any], int]]:
    if mode == "all":
        per_image: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            per_image[r["image"]].append(r)
        complete = [rs for rs in per_image.values() if all(r["id"] is not None for r in rs)]
        if not complete:
            return []
        width = max(len(rs) for rs in complete)
        complete = [sorted(rs, key=lambda r: r["target"]) for rs in complete if len(rs) == width]
        flat = [r for rs in complete for r in rs]
        counted = _counted(flat)
        d = {k: torch.tensor([float(r[k]) for r in flat], dtype=torch.float64)
             for k in (*METRICS, *(("queries",) if counted else ()))}
        ok = torch.tensor([bool(r["success"]) for r in flat])
        pick = torch.tensor([next((j for j, r in enumerate(rs) if r["average"]), 0) for rs in complete])
        cases = cases_from_distortions(d, ok, width, by, pick)
        every = _mean_queries(flat)
        return [(case, _plain({**summary, "queries": every, "queries_success": summary.get("queries")}), len(complete))
                for case, summary in cases.items()]
    done = [r for r in rows if r["id"] is not None]
    if not done:
        return []
    ok = torch.tensor([bool(r["success"]) for r in done])
    summary: dict[str, Any] = {"asr": success_rate(ok)}
    summary.update({k: mean_over_success(torch.tensor([float(r[k]) for r in done], dtype=torch.float64), ok)
                    for k in METRICS})
    summary["queries"] = _mean_queries(done)
    summary["queries_success"] = _mean_queries([r for r in done if r["success"]])
    return [(SINGLE_CASE.get(mode, mode), _plain(summary), len(done))]


def _plain(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


# ------------------------------------------------------------------------------------------------ formats


def to_json(table: list[dict[str, Any]]) -> str:
    return json.dumps(table, indent=2, ensure_ascii=False) + "\n"


def to_csv(table: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "l0_coords"], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({**row, "params": json.dumps(row["params"], sort_keys=True)})
    return out.getvalue()


def _num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def to_markdown(table: list[dict[str, Any]]) -> str:
    """One table per attack and parameter set, as the papers print them."""
    if not table:
        return "No finished rows yet.\n"
    blocks: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        blocks[(row["model"], row["attack"], json.dumps(row["params"], sort_keys=True))].append(row)
    parts = []
    for (model, attack, _), rows in blocks.items():
        defaults = ATTACKS[attack].defaults() if attack in ATTACKS else {}
        changed = {k: v for k, v in rows[0]["params"].items() if defaults.get(k, object()) != v}
        title = f"### {attack} on {model}" + (" — " + ", ".join(f"{k}={v}" for k, v in changed.items()) if changed else "")
        swept = rows[0]["sweep_param"]
        counted = any(r.get("queries") is not None for r in rows)  # black-box attacks: queries per example
        head = ([swept] if swept else []) + ["case", "n", "ASR %", "ℓ0", "ℓ1", "ℓ2", "ℓ∞"] + \
            (["queries (all)", "queries (successes)"] if counted else [])
        lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = ([str(r["sweep_value"])] if swept else []) + [
                r["case"], str(r["n"]), _num(r["asr"], 1), _num(r["l0"], 1), _num(r["l1"]), _num(r["l2"]),
                _num(r["linf"])] + ([_num(r["queries"], 0), _num(r["queries_success"], 0)] if counted else [])
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    note = " Queries: the mean per attacked example over all of them (all targets for best / average / worst) and " \
        "over the case's successes." if any(r.get("queries") is not None for r in table) else ""
    return "\n\n".join(parts) + "\n\n(ASR over images; distortions are means over successful examples; cases ranked by " \
        "each attack's own norm." + note + ")\n"
