"""``duikou`` refuses a mistaken argument before anything starts (issue 15 part 6).

One subprocess runs every mistake through :func:`flows.cli.main` and then reports which modules it
imported: each mistake is exit 2 and one Chinese-and-English line on stderr without a traceback,
and neither Prefect nor Great Expectations was imported — so no flow run can have been created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import contextlib, io, json, sys
from flows.cli import main

out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    out.append({"argv": argv, "code": code, "stderr": err.getvalue()})
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"prefect", "great_expectations"})
print(json.dumps({"runs": out, "imported": heavy}))
"""


def test_argument_mistakes_exit_2_in_one_line_before_prefect_or_gx_is_imported(tmp_path: Path) -> None:
    form = tmp_path / "form.xlsx"
    form.write_bytes(b"not read")
    mistakes = {  # argv → what the line must name
        ("ingest", str(form), "--department", "edu", "--period", "2016-05"): ("未知部门", "education, health"),
        ("submit", str(form), "--department", "labour_registry", "--period", "2016"): ("未知部门", "tourism"),
        ("ingest", str(tmp_path / "gone.xlsx"), "--department", "tourism", "--period", "2016-05"):
            ("找不到文件", "no such file"),
        ("ingest", str(form), "--department", "tourism", "--period", "2016/05"): ("格式不对", "malformed"),
        ("ingest", str(form), "--department", "tourism", "--period", "2016-13"): ("1–12", "impossible"),
        ("submit", str(form), "--department", "tourism", "--period", "2016"): ("月报", "monthly"),
        ("ingest", str(form), "--department", "poverty", "--period", "2016-05"): ("年报", "annual"),
        ("history", "tourism", "0000-01"): ("不在可受理范围", "outside"),
        ("intake-token", "create", "tourisme"): ("未知部门", "unknown department"),
    }
    env = {**os.environ, "DUIKOU_DATA_DIR": str(tmp_path / "data")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps([list(a) for a in mistakes])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["imported"] == []  # checked in the subprocess: no Prefect, no GX, hence no flow run
    for run, (chinese, english) in zip(answer["runs"], mistakes.values(), strict=True):
        lines = run["stderr"].strip().splitlines()
        assert run["code"] == 2 and len(lines) == 1, run
        assert chinese in lines[0] and english in lines[0] and "Traceback" not in run["stderr"], run
    assert not (tmp_path / "data").exists()  # nothing created either


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "flows.cli", "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.startswith("duikou ")
