"""Built-in job packs. Each module has a ``register(app)`` function."""
