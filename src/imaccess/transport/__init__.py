"""Client-facing transports: thin adapters that own their read loop and feed bytes to a
:class:`~imaccess.connection.Connection`, which writes back through them."""
