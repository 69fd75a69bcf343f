"""The Amazon States Language, as a pure and deterministic library.

- ``paths``: JSONPath (InputPath, OutputPath, ResultPath, ItemsPath, ``$$``, variables) and
  payload templates (Parameters, ItemSelector, ResultSelector);
- ``intrinsics`` (with ``functions``): the ``States.*`` intrinsic functions;
- ``choice``: Choice rules for JSONPath machines;
- ``jsonata``: ``{% %}`` JSONata expressions with ``$states`` and variables;
- ``errors``: error names, the ``ASLError`` exception, Retry/Catch matching and retry delays;
- ``validate``: static validation of a definition, every problem with its JSON pointer.

It imports nothing else from Lodestone, does no I/O and reads no clock; random numbers, UUIDs
and the time JSONata's ``$now`` sees come from the caller's ``Sources``.
"""

from .errors import ASLError
from .functions import Sources

__all__ = ["ASLError", "Sources"]
