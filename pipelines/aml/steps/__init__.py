"""Scripts of the Azure ML pipelines' own steps. Uploaded alone to Azure ML: they import only
the standard library, pandas and azureml-core, never ``shared``."""
