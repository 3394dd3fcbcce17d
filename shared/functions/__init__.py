"""Function App blueprints: triggers only, each a few lines calling shared/flows."""
