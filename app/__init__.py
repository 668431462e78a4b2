"""modelgraph: a model registry with experiment tracking, served as a GraphQL API."""

__version__ = "0.1.0"
