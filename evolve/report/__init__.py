"""Looking at a search: a self-contained HTML report, a live view, and a data export.

Everything here only reads a run's database (SQLite opened read-only, or any
SQLAlchemy URL) and never runs a stored program.
"""
