"""The course's one error type."""


class TLCourseError(RuntimeError):
    """A plain-language failure: what was tried, and what to do about it."""
