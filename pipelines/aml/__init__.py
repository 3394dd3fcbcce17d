"""Build and publish the Azure ML (SDK v1) training and forecasting pipelines.

``python -m pipelines.aml.publish --kind training|forecasting`` is what the bootstrap pipeline
runs; the pipeline graphs belong to the adapter (:mod:`shared.workspace.aml.pipeline_graph`);
:mod:`pipelines.aml.steps` holds the scripts of the pipelines' own steps (bulk registration,
copying predictions), uploaded to Azure ML alone.
"""
