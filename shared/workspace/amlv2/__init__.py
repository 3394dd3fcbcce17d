"""The Azure ML workspace adapter on SDK v2 (``azure-ai-ml``), ``MANYMODELS_BACKEND=amlv2``.

``AmlV2Workspace.from_settings(settings)`` (in :mod:`.workspace`) builds an ``MLClient`` with
``DefaultAzureCredential`` (the Function App's managed identity on Azure) and exposes the five
stores of :mod:`shared.workspace.base`. Each store gets only the collaborators it uses (the
client, the settings, a blob store), never the whole workspace. Every SDK error is translated
into :mod:`shared.errors` at this edge (:mod:`.sdk_errors`); the tag names the adapter writes and
reads are in :mod:`.tags` (the same as the v1 adapter's, so events and runs parse the same).
"""
