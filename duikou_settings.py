"""One typed settings object, read from the environment (prefix ``DUIKOU_``).

Everyone may import this module; it imports nothing of ours.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. See ``.env.example`` for every variable."""

    model_config = SettingsConfigDict(env_prefix="DUIKOU_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="landing, archive, quarantine, receipts, reports")
    warehouse_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/warehouse.sqlite"
    )
    sum_tolerance: float = Field(default=0.5, description="absolute tolerance of 合计 checks, in base units")
    # File safety: every limit is checked before a parser sees the file (tasks/read.py)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="largest accepted file, in bytes")
    max_uncompressed_bytes: int = Field(
        default=200 * 1024 * 1024, gt=0, description="largest total uncompressed size of an .xlsx archive's members"
    )
    max_compression_ratio: float = Field(
        default=100.0, gt=1, description="largest uncompressed/compressed ratio of one .xlsx member (zip bombs)"
    )
    max_cells: int = Field(
        default=500_000, gt=0, description="most cells in one file (all sheets, or all CSV fields) before parsing"
    )

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_warehouse_url(self) -> str:
        if self.warehouse_url:
            return self.warehouse_url
        return f"sqlite:///{self.resolved_data_dir / 'warehouse.sqlite'}"

    @property
    def landing_dir(self) -> Path:
        return self.resolved_data_dir / "landing"

    @property
    def archive_dir(self) -> Path:
        return self.resolved_data_dir / "archive"

    @property
    def quarantine_dir(self) -> Path:
        return self.resolved_data_dir / "quarantine"

    @property
    def receipts_dir(self) -> Path:
        return self.resolved_data_dir / "receipts"

    @property
    def reports_dir(self) -> Path:
        return self.resolved_data_dir / "reports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Tests change the environment; this makes the next ``get_settings()`` re-read it."""
    get_settings.cache_clear()
