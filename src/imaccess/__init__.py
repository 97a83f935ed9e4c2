"""imaccess: the access layer (gateway) of an instant-messaging system.

Clients hold QUIC connections; frames are ``u32 length | u16 type | FlatBuffers body``
(see PROTOCOL.md). The node authenticates them, keeps them alive, forwards what they send
to Logic over a bus and pushes what Logic sends back.
"""

__version__ = "0.1.0"
