"""Tag and property names the v2 adapter writes and reads on Azure ML assets and jobs.

Run tags have the same names and values as the v1 adapter's (shared/workspace/aml/runs.py), so a
run's events and records parse the same whichever SDK submitted it (tests/unit/test_amlv2_core.py
checks they stay equal). This module imports no SDK, so pipeline graphs and the entry scripts'
helpers can use it too.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------- pipeline jobs (runs)
TAG_KIND: Final = "manymodels_kind"  # "training" | "forecasting" (shared.workspace.base.PipelineKind)
TAG_DATASET: Final = "dataset_name"
TAG_DATASET_VERSION: Final = "dataset_version"  # a whole number, as text
TAG_PIPELINE: Final = "manymodels_pipeline"  # the published pipeline (component) name the job runs
TAG_PIPELINE_VERSION: Final = "manymodels_pipeline_version"
PARAMETER_PREFIX: Final = "param_"  # run parameter "mode" is tag "param_mode"

# job properties the pipeline steps set (pipelines/aml/steps): counts, outputs, failures

# --------------------------------------------------------------------------- data assets (dataset versions)
TAG_FINGERPRINT: Final = "manymodels_fingerprint"  # shared.workspace.dataset_versions.fingerprint of the files
TAG_FILES: Final = "manymodels_files"  # the blob (in METADATA_CONTAINER) holding the version's full file list
TAG_MODE: Final = "manymodels_mode"  # "full" | "partial"
TAG_CHANGED_COUNT: Final = "manymodels_changed_count"  # how many files changed (the names are in the blob)
INTERNAL_DATASET_TAGS: Final = (TAG_FINGERPRINT, TAG_FILES, TAG_MODE, TAG_CHANGED_COUNT)
METADATA_CONTAINER: Final = "datasets"  # never the landing container: writing there raises landing events

# --------------------------------------------------------------------------- job inputs (datasets.job_input)
INPUT_DATA: Final = "data"  # the dataset version's uri_folder
INPUT_ONLY_FILES: Final = "only_files"  # JSON list of the file names to process, or "" for every file


def parameter_tag(name: str) -> str:
    return f"{PARAMETER_PREFIX}{name}"
