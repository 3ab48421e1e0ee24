"""creditgraph: a GraphQL billing API for AI API platforms."""
