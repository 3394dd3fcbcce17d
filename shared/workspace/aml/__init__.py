"""The Azure ML workspace adapter (azureml-core SDK v1).

``AmlWorkspace.from_settings(settings)`` (in :mod:`.workspace`) connects with
``DefaultAzureCredential`` (the Function App's managed identity on Azure) and exposes the five
stores of :mod:`shared.workspace.base`. Every SDK error is translated into :mod:`shared.errors`
at this edge (:mod:`.sdk_errors`), so flows never see an azureml exception.
"""
