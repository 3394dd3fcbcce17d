"""Publish the SDK v2 training or forecasting pipeline: register it as the next version of its pipeline component.

    python -m pipelines.amlv2.publish --kind training|forecasting [--name NAME] [--compute NAME]
        [--settings-file FILE] [--config FILE] [--automl-settings FILE] [--training-method customscript|automl]
        [--subscription-id ID --resource-group RG --workspace-name WS] [--json]

The workspace comes from the flags or from AZURE_SUBSCRIPTION_ID, RESOURCE_GROUP and AML_WORKSPACE_NAME;
credentials from ``DefaultAzureCredential`` (the pipeline's ``az login``). A component version is never
disabled: runs use the latest one (shared/workspace/amlv2/pipelines.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.errors import ManyModelsError
from shared.settings import Settings
from shared.workspace.base import PipelineKind, Workspace


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.amlv2.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True, choices=[str(k) for k in PipelineKind])
    parser.add_argument("--name", help="published pipeline name (default: TRAINING_/FORECASTING_PIPELINE_NAME)")
    parser.add_argument("--compute", help="compute cluster (default: AML_COMPUTE_NAME)")
    parser.add_argument("--settings-file", type=Path, help="dataset schema (default: script_settings.json)")
    parser.add_argument("--config", type=Path, help="parallel step config (default: the kind's yml)")
    parser.add_argument("--automl-settings", type=Path,
                        help="AutoML settings (default: automl-many-models-settings.yml)")
    parser.add_argument("--training-method", choices=["customscript", "automl"], help="default: TRAINING_METHOD")
    parser.add_argument("--subscription-id")
    parser.add_argument("--resource-group")
    parser.add_argument("--workspace-name")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def settings_for(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    env["MANYMODELS_BACKEND"] = "amlv2"
    for flag, name in (("subscription_id", "AZURE_SUBSCRIPTION_ID"), ("resource_group", "RESOURCE_GROUP"),
                       ("workspace_name", "AML_WORKSPACE_NAME"), ("compute", "AML_COMPUTE_NAME"),
                       ("training_method", "TRAINING_METHOD")):
        if getattr(args, flag):
            env[name] = getattr(args, flag)
    return Settings.from_env(env)


def publish(args: argparse.Namespace, settings: Settings, workspace: Workspace | None = None) -> dict[str, Any]:
    kind = PipelineKind(args.kind)
    name = args.name or (settings.training_pipeline_name if kind == PipelineKind.TRAINING
                         else settings.forecasting_pipeline_name)
    parameters = {k: v for k, v in (("settings_file", args.settings_file), ("config_file", args.config),
                                    ("automl_settings_file", args.automl_settings)) if v}
    if workspace is None:
        from shared.workspace.amlv2.workspace import AmlV2Workspace

        workspace = AmlV2Workspace.from_settings(settings)
    published = workspace.pipelines.publish(name, kind, parameters=parameters)
    return {"name": published.name, "kind": str(published.kind), "pipeline_id": published.pipeline_id,
            "version": published.version, "training_method": settings.training_method}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = publish(args, settings_for(args))
    except ManyModelsError as e:
        print(f"publish: error: {e.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Published {result['kind']} pipeline {result['name']} version {result['version']} "
              f"({result['training_method']}, id {result['pipeline_id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
