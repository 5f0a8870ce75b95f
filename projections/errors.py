"""Errors of the projections: DuckDB's own errors are translated into these at the edge."""

from __future__ import annotations

from ledger.errors import QuorumError

__all__ = ["NoOverlap", "ProjectionError", "QueryError", "ReadOnlyQuery"]


class ProjectionError(QuorumError):
    """A projection could not be built or queried."""


class QueryError(ProjectionError):
    """An analyst's SQL failed: the message is DuckDB's, naming the bad part."""


class ReadOnlyQuery(QueryError):
    """A query tried to change something; projections are read-only views of the ledger."""


class NoOverlap(ProjectionError):
    """Agreement was asked of a dataset where no task has answers from two sessions."""
