"""The local runtime of ``function_app.py``: what the Azure Functions host and Event Grid do on Azure.

``azure-functions-core-tools`` cannot be installed everywhere and no Event Grid emulator exists, so
the project carries its own small host (``manymodels up``):

- :mod:`.functions` imports the app and reads every function and binding from ``get_functions()``;
- :mod:`.invoke` calls a function exactly like the Python worker does (typed binding objects,
  ``context``, async functions) and logs one line per invocation;
- :mod:`.server` serves HTTP triggers under ``/api`` with function keys (:mod:`.keys`) and the
  Event Grid webhook ``/runtime/webhooks/eventgrid``;
- :mod:`.eventgrid` is a local Event Grid (topics ``storage`` and ``workspace``, subscriptions from
  ``infra/eventgrid/subscriptions.json``, at-least-once delivery with retries and dead-lettering);
- :mod:`.blobevents` turns new blob versions in Azurite into ``Microsoft.Storage.BlobCreated``;
- :mod:`.queues` and :mod:`.timers` run queue and timer triggers;
- :mod:`.host` puts it together and :mod:`.process` starts/stops it as a background process.
"""
