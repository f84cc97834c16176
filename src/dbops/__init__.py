"""dbops: database operations for Python projects on PostgreSQL."""

__version__ = "0.1.0"
