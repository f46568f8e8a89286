"""The one exception type for bad user input.

Messages say what was wrong, where (the input's name), what was expected and how to fix it.
The CLI prints them without a traceback. It subclasses ``ValueError`` so callers that
already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Raised for invalid user input: files, arrays, configs, checkpoints."""
