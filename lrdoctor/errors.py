"""The one exception type lrdoctor raises for bad input."""
from __future__ import annotations


class LrDoctorError(Exception):
    """An input lrdoctor cannot use.

    The message is one line that says which file, which place (line or column) and what is
    wrong, followed by what to do. The CLI prints it as ``lrdoctor: <source>: <message>``.

    Attributes
    ----------
    source : str or None
        The input as given (a path), when the error concerns one input.
    message : str
        What is wrong and what to do, without the source.
    """

    def __init__(self, message: str, source: str | None = None):
        self.source = None if source is None else str(source)
        self.message = message
        super().__init__(f"{self.source}: {message}" if self.source else message)
