"""What the SDK v2 (``azure-ai-ml``) pipelines upload or run from a shell, for ``MANYMODELS_BACKEND=amlv2``.

- :mod:`.components`: the environments and the command components of ``pipelines/aml/steps/``;
- :mod:`.parallel_entry`: the entry-script shim staged beside ``scoring/`` (a dataset version's file list);
- :mod:`.steps`: the ``TRAINING_METHOD=automl`` step scripts (AutoML's models adopted, its forecasts as the CSV);
- :mod:`.publish`: the CLI that registers the pipelines (``python -m pipelines.amlv2.publish``).

The graphs belong to the adapter (shared/workspace/amlv2/pipeline_graph.py) and its store
(shared/workspace/amlv2/pipelines.py) publishes and submits them; nothing here but the CLI imports them.
"""
