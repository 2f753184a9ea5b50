"""The HTTP and WebSocket surface: the GraphQL view and protocols, middleware, icons, health."""
