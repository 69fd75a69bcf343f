"""env: and file: references."""

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from lodestone.secrets.base import (
    InvalidSecretRef,
    SecretAccessDenied,
    SecretNotFound,
    SecretsNotConfigured,
    SecretsProvider,
    split_ref,
)

log = logging.getLogger("lodestone.secrets")


class EnvFileSecrets(SecretsProvider):
    """env: from the mapping given here (never read from os.environ behind the caller's back);
    file: absolute paths that resolve, symlinks followed, inside file_root."""

    def __init__(self, env: Mapping[str, str], file_root: Path | None = None) -> None:
        self._env = env
        self._root = file_root.resolve() if file_root is not None else None

    def __repr__(self) -> str:
        return f"EnvFileSecrets(env=<{len(self._env)} names>, file_root={self._root!r})"

    async def get(self, ref: str) -> str:
        scheme, target = split_ref(ref)
        if scheme == "env":
            if target not in self._env:
                raise SecretNotFound(f"env:{target} is not set")
            return self._env[target]
        if scheme == "file":
            return await asyncio.to_thread(self._read_file, target)
        raise InvalidSecretRef(f"EnvFileSecrets resolves env: and file: references, not {scheme}:")

    def _read_file(self, target: str) -> str:
        path = Path(target)
        if not path.is_absolute():
            raise InvalidSecretRef(f"file:{target} is relative; file: references need an absolute path")
        if self._root is None:
            raise SecretsNotConfigured("file: references are disabled: SECRETS_FILE_ROOT is not set")
        resolved = path.resolve()
        if not resolved.is_relative_to(self._root):
            log.warning("refused file secret outside the root: %s", path)
            raise SecretAccessDenied(f"file:{path} is outside the secrets root {self._root}")
        try:
            text = resolved.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise SecretNotFound(f"file:{path} does not exist") from None
        except PermissionError:
            raise SecretAccessDenied(f"file:{path} is not readable by this process") from None
        except UnicodeDecodeError:
            raise SecretNotFound(f"file:{path} is not UTF-8 text") from None
        return text.removesuffix("\n").removesuffix("\r")
