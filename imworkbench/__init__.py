"""The service shell of the workbench: everything that knows HTTP, processes or the environment.

- ``app``: ``create_app(settings) -> Starlette``: lifespan, routes, middleware.
- ``settings``: ``Settings`` from ``WORKBENCH_*`` variables (pydantic-settings).
- ``cli``: the ``workbench`` command (typer); ``serving``: uvicorn options, the garbage collector
  of a serving process, graceful shutdown.
- ``http``: the GraphQL view (``graphql_view``), both WebSocket protocols (``websocket``),
  middleware, icons over HTTP, health and metrics (``health``).
- ``brokers``: the broker backends (``memory://``, ``redis://``) behind ``resolvers.broker``.
- ``push_gateways``: the push gateways behind ``resolvers.push.PushGateway``.
- ``logs``: structured logs and request ids.
- ``static``: GraphiQL's assets and the built-in icons.

Dependencies point one way: ``storage`` <- ``resolvers`` <- ``schema`` / ``legacy_rest`` <- this
package, which nothing below it imports (``tests/test_architecture.py``).
"""
