"""How long the deployment planner takes for N registered models.

Two plans, timed side by side in one run: the full first plan (nothing deployed), then a re-plan
after 1% of the models got a new version (every other model stays where it is).

    .venv/bin/python benchmarks/plan_deployment.py --models 100000 --json

Last line: ``{"models", "groups", "seconds", "first_plan_seconds", "replan_seconds", "updated_groups",
"updated_models"}`` where ``seconds`` is the slower of the two plans (the target: under 1 s at 100,000).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.grouping import GroupAction, deployment_state, plan_deployment
from shared.workspace.base import ModelRecord


def registry(n: int, *, version: int = 1) -> list[ModelRecord]:
    brands = ("dominicks", "minute.maid", "tropicana")
    return [ModelRecord(f"lr_{brands[i % 3]}_{1000 + i // 3}", version,
                        {"ModelType": "lr", "Store": str(1000 + i // 3), "Brand": brands[i % 3],
                         "StoreGroup10": str(1000 + (i // 3) % 10), "DatasetVersion": "1", "RunId": "run-1"}, "")
            for i in range(n)]


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--container-size", type=int, default=500)
    parser.add_argument("--splitting-tags", nargs="*", default=[], help="e.g. StoreGroup10")
    parser.add_argument("--sorting-tags", nargs="*", default=["Store"])
    parser.add_argument("--changed", type=float, default=0.01, help="share of models with a new version")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args(argv)
    options = {"container_size": args.container_size, "prefix": "manymodels-",
               "splitting_tags": args.splitting_tags, "sorting_tags": args.sorting_tags}

    models = registry(args.models)
    first, first_seconds = timed(plan_deployment, models, {}, **options)
    state = deployment_state(first, {g.service: f"http://127.0.0.1/{g.service}/score" for g in first.groups})
    rng = random.Random(0)
    changed = set(rng.sample(range(len(models)), int(len(models) * args.changed)))
    retrained = [ModelRecord(m.name, 2, m.tags, "") if i in changed else m for i, m in enumerate(models)]
    second, replan_seconds = timed(plan_deployment, retrained, state, **options)
    updated = second.by_action(GroupAction.UPDATE)
    result = {"models": args.models, "groups": len(first.groups),
              "seconds": round(max(first_seconds, replan_seconds), 4),
              "first_plan_seconds": round(first_seconds, 4), "replan_seconds": round(replan_seconds, 4),
              "updated_groups": len(updated), "updated_models": len(changed),
              "unchanged_groups": len(second.by_action(GroupAction.UNCHANGED))}
    if not args.json:
        print(f"planned {args.models} models into {len(first.groups)} groups in {first_seconds:.3f}s; "
              f"after {len(changed)} new versions: {len(updated)} groups to update in {replan_seconds:.3f}s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
