"""The broker: the embedded Valkey server, connections, transport and queue inspection."""
