"""What the API does: plain async functions over explicit arguments (database, broker, principal).

Shared by ``schema`` (GraphQL) and ``legacy_rest`` (the seed's endpoints); never sees GraphQL
``info`` or HTTP requests. Imports neither strawberry, starlette nor settings.
"""
