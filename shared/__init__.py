"""manymodels: event-driven many-models training, deployment and forecasting (Azure Functions + Azure ML)."""
