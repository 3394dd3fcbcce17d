"""The Azure ML workspace adapter (azureml-core SDK v1)."""
