"""The GraphQL API: schema, types and the ASGI view mounted at ``/graphql``."""
