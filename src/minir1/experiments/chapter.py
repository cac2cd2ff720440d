"""What an experiment's ``run(cfg, seeds)`` returns: :class:`minir1.results.ChapterResult`."""

from ..results import ChapterResult

__all__ = ["ChapterResult"]
