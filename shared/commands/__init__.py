"""Sub-commands of ``manymodels``: one module per area, each with ``register(subparsers)``."""
