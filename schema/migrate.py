"""Run alembic migrations programmatically (the dev stack and `lodestone migrate` use this)."""

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    # alembic runs its own event loop: call this from a thread, not from a running loop.
    command.upgrade(alembic_config(url), revision)
