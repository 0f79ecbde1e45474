"""Run the Alembic migrations from code (start-up of the demo, the containers and the tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from grader.settings import PROJECT_ROOT


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["configure_logger"] = False
    if url:
        config.attributes["url"] = url
    return config


def upgrade_head(url: str | None = None) -> None:
    command.upgrade(alembic_config(url), "head")


def downgrade_base(url: str | None = None) -> None:
    command.downgrade(alembic_config(url), "base")
