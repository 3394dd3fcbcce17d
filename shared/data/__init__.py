"""Data: the dataset schema, validation, batch manifests, the OJ sample simulator and loaders."""
