"""The HTTP interfaces: REST for the gateway and clients, GraphQL for dashboards."""
