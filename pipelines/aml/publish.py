"""Publish the Azure ML training or forecasting pipeline (what the bootstrap pipeline runs).

    python -m pipelines.aml.publish --kind training|forecasting [--name NAME] [--compute NAME]
        [--settings-file FILE] [--config FILE] [--subscription-id ID --resource-group RG
        --workspace-name WS] [--json]

The workspace comes from the flags or from AZURE_SUBSCRIPTION_ID, RESOURCE_GROUP and
AML_WORKSPACE_NAME; credentials from ``DefaultAzureCredential`` (the pipeline's ``az login``).
Older published pipelines of the same name are disabled once the new one exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.errors import ManyModelsError
from shared.settings import Settings
from shared.workspace.base import PipelineKind


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.aml.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True, choices=[str(k) for k in PipelineKind])
    parser.add_argument("--name", help="published pipeline name (default: TRAINING_/FORECASTING_PIPELINE_NAME)")
    parser.add_argument("--compute", help="compute cluster (default: AML_COMPUTE_NAME)")
    parser.add_argument("--settings-file", type=Path, help="dataset schema (default: script_settings.json)")
    parser.add_argument("--config", type=Path, help="ParallelRunStep config (default: the kind's yml)")
    parser.add_argument("--subscription-id")
    parser.add_argument("--resource-group")
    parser.add_argument("--workspace-name")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def settings_for(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    import os

    env = dict(os.environ if environ is None else environ)
    env["MANYMODELS_BACKEND"] = "aml"
    for flag, name in (("subscription_id", "AZURE_SUBSCRIPTION_ID"), ("resource_group", "RESOURCE_GROUP"),
                       ("workspace_name", "AML_WORKSPACE_NAME"), ("compute", "AML_COMPUTE_NAME")):
        if getattr(args, flag):
            env[name] = getattr(args, flag)
    return Settings.from_env(env)


def publish(args: argparse.Namespace, settings: Settings, workspace=None) -> dict:
    from shared.workspace.aml.workspace import AmlWorkspace  # azureml-core takes seconds to import: only to publish

    kind = PipelineKind(args.kind)
    name = args.name or (settings.training_pipeline_name if kind == PipelineKind.TRAINING
                         else settings.forecasting_pipeline_name)
    parameters = {k: v for k, v in (("settings_file", args.settings_file), ("config_file", args.config)) if v}
    workspace = workspace or AmlWorkspace.from_settings(settings)
    published = workspace.pipelines.publish(name, kind, parameters=parameters)
    return {"name": published.name, "kind": str(published.kind), "pipeline_id": published.pipeline_id,
            "version": published.version}


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
              f"(id {result['pipeline_id']}); older versions disabled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
