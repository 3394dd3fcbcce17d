"""The local workspace: SQLite + files under MANYMODELS_HOME, standing in for Azure ML."""
