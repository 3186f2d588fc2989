"""One typed settings object, read from the environment (prefix ``DUIKOU_``).

Everyone may import this module; it imports nothing of ours.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. See ``.env.example`` for every variable."""

    model_config = SettingsConfigDict(env_prefix="DUIKOU_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="landing, archive, quarantine, receipts, reports")
    landing_url: str | None = Field(
        default=None,
        description="fsspec URL of the landing area (s3://bucket/duikou/landing, gcs://…, file:///mnt/nfs/landing); "
        "default <data_dir>/landing (tasks/landing/store.py)",
    )
    landing_storage_options: SecretStr | None = Field(
        default=None, description="JSON object of fsspec storage options for landing_url (endpoint, keys); never logged"
    )
    warehouse_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/warehouse.sqlite"
    )
    sum_tolerance: float = Field(default=0.5, description="absolute tolerance of 合计 checks, in base units")
    # File safety: every limit is checked before a parser sees the file (tasks/forms/file_safety.py)
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
    # Obligations calendar (expectations/obligations.py, mart_completeness)
    as_of: date | None = Field(
        default=None, description="date completeness is judged at (county time); default today in Asia/Shanghai"
    )
    programme_start: date | None = Field(
        default=None, description="first day returns are expected; default each department's earliest period"
    )

    # Operations (flows/serve.py, flows/intake.py; docs/operations.md)
    writer_concurrency: int = Field(
        default=2, gt=0, description="most warehouse writes at once across all partitions (Prefect concurrency limit)"
    )
    report_debounce_seconds: float = Field(
        default=30.0, ge=0, description="refresh-reports waits this long for newer warehouse updates before building"
    )
    intake_tokens_file: Path | None = Field(
        default=None, description="hashed intake tokens (JSON); default <data_dir>/secrets/intake-tokens.json"
    )
    intake_token_hashes: str = Field(
        default="", description="extra hashed tokens as department=sha256hex pairs, comma-separated (environment)"
    )
    intake_host: str = Field(default="127.0.0.1", description="address duikou intake-server listens on")
    intake_port: int = Field(default=8765, gt=0, lt=65536, description="port duikou intake-server listens on")
    public_url: str | None = Field(
        default=None,
        description="the address people open the intake server's portal at (links in notices, sign-in links, "
        "artifacts); default http://<intake_host>:<intake_port>",
    )
    notify_block: str = Field(
        default="custom-webhook/duikou-ops", description="Prefect notification block (type-slug/name) alerts go to"
    )
    # Notices to departments (flows/department_notices.py), with links to the portal (<public_url>/portal)
    remind_days_before: str = Field(
        default="3,1", description="days before a return's due day its department is reminded, comma-separated"
    )
    department_notify_blocks: str = Field(
        default="", description="each department's Prefect notification block (type-slug/name), as "
        "department=custom-webhook/name pairs, comma-separated; a department without one gets no notices"
    )
    serve_poll_seconds: float = Field(default=2.0, gt=0, description="how often duikou serve looks for new runs")
    serve_workers: int = Field(default=2, gt=0, description="flow runs duikou serve executes at once (threads)")

    # Person-level registries (tasks/registry/stream.py)
    person_key: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of person keys (≥32 characters); required to ingest a registry, never logged",
    )
    registry_max_upload_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024, gt=0, description="largest accepted person-level registry file, in bytes"
    )
    registry_max_uncompressed_bytes: int = Field(
        default=4 * 1024 * 1024 * 1024, gt=0, description="largest uncompressed size of a registry .xlsx"
    )
    registry_key_process: bool = Field(
        default=True, description="compute a registry's person keys in a helper process beside the stream "
        "(tasks/registry/keyworker.py; false: in the stream's own process)",
    )
    # Nightly task runner (flows/runners.py)
    task_runner: str = Field(default="threads", description="threads | dask | workpool")
    max_workers: int = Field(default=2, gt=0, description="threads of the thread-pool task runner")
    dask_address: str | None = Field(default=None, description="tcp://host:8786 of a Dask scheduler (task_runner=dask)")
    work_pool: str = Field(default="duikou-process", description="Prefect process work pool (task_runner=workpool)")
    work_pool_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="the nightly waits this long for its department flow runs (workpool)"
    )

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_public_url(self) -> str:
        """The portal's base address, without a trailing slash."""
        return (self.public_url or f"http://{self.intake_host}:{self.intake_port}").rstrip("/")

    @property
    def resolved_warehouse_url(self) -> str:
        if self.warehouse_url:
            return self.warehouse_url
        return f"sqlite:///{self.resolved_data_dir / 'warehouse.sqlite'}"

    @property
    def landing_dir(self) -> Path:
        return self.resolved_data_dir / "landing"

    @property
    def staging_dir(self) -> Path:
        """Local copies of objects fetched from a remote landing area (tasks/landing/store.py)."""
        return self.resolved_data_dir / "staging"

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

    @property
    def submission_window_today(self) -> date:
        """The day the plausible-period window (tasks/forms/periods.py) is measured from: today in county
        time (Asia/Shanghai, UTC+8), or ``as_of`` when that is later (a replayed history)."""
        from datetime import datetime, timedelta, timezone

        today = datetime.now(timezone(timedelta(hours=8))).date()
        return max(today, self.as_of) if self.as_of is not None else today

    @property
    def resolved_portal_url(self) -> str:
        """The department portal (flows/portal.py) as people reach it: ``<public url>/portal``."""
        return f"{self.resolved_public_url}/portal"

    def department_blocks(self) -> dict[str, str]:
        """``DUIKOU_DEPARTMENT_NOTIFY_BLOCKS`` as department → block slug; ValueError naming a bad item."""
        out: dict[str, str] = {}
        for item in (part.strip() for part in self.department_notify_blocks.split(",")):
            if not item:
                continue
            department, sep, slug = (x.strip() for x in item.partition("="))
            if not sep or not department or "/" not in slug:
                raise ValueError(f"DUIKOU_DEPARTMENT_NOTIFY_BLOCKS item {item!r}: "
                                 "expected department=<block type>/<name>")
            out[department] = slug
        return out

    @property
    def resolved_intake_tokens_file(self) -> Path:
        if self.intake_tokens_file is not None:
            return self.intake_tokens_file.expanduser().resolve()
        return self.resolved_data_dir / "secrets" / "intake-tokens.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Tests change the environment; this makes the next ``get_settings()`` re-read it."""
    get_settings.cache_clear()
