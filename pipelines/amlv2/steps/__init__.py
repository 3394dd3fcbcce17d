"""Scripts of the SDK v2 pipelines' own steps for ``TRAINING_METHOD=automl`` (uploaded alone to Azure ML).

They run beside ``pipelines/aml/steps/`` (``register_models.py``, ``copy_predictions.py``) and
``scoring/model_names.py``, staged into one folder (shared/workspace/amlv2/pipeline_graph.py
``stage_automl_steps``), and import nothing of ``shared``: the standard library, pandas, azureml-core,
azure-ai-ml and azure-identity only (pipelines/configuration/environment-steps.yml)."""
