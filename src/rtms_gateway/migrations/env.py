"""Alembic environment: the store hands over an open (sync-facing) connection."""

from alembic import context

from rtms_gateway.sinks.schema import include_name, metadata

connection = context.config.attributes["connection"]
# The search indexes live outside the model (see sinks.schema): never "removed" by autogenerate.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
