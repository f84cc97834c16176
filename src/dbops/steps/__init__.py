"""Primitive steps: each does one thing and may return its undo (see dbops.engine.pipeline)."""
