"""What an ``ingest-submission`` run is in Prefect (issue 19 part 1): its steps are plain calls, not
one task run each — the clerk waits on them — and the run's log says what each step took."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tests.conftest import use_data_dir

STEP_NAMES = ["receive", "check-ledger", "read-and-normalise", "read-history", "validate", "load",
              "correction-workbook", "write-receipt", "dq-summary", "cross-checks-and-follow-ups"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with use_data_dir(monkeypatch, tmp_path / "data") as data:
        yield data


def test_an_ingest_run_has_no_task_run_per_step_and_logs_each_steps_time(
    prefect_harness: None, data_dir: Path, tmp_path: Path
) -> None:
    from flows.ingest import ingest_submission

    form = write_form(tmp_path / "旅游月报 2016-03.xlsx", load_declarations()["tourism"], "2016-03",
                      demo_values()[("tourism", "2016-03")])
    state = ingest_submission(str(form), "tourism", "2016-03", return_state=True)
    result = state.result()
    assert result.status == "loaded" and result.receipt_path is not None and result.receipt_path.is_file()

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        task_names = [t.name for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))]
        assert task_names == [], "every step, the follow-up too, is a plain call in the run"
        deadline, lines = time.monotonic() + 30, []
        while time.monotonic() < deadline and not lines:  # the run's logs reach the server in batches
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            lines = [log.message for log in logs if log.message.startswith("steps: ")]
            time.sleep(0.5)
    assert len(lines) == 1, "one steps line per run"
    timed = re.findall(r"([a-z-]+) (\d+\.\d{3}) s", lines[0])
    assert [name for name, _ in timed] == STEP_NAMES
    assert all(float(seconds) >= 0 for _, seconds in timed)
