"""The intake server in-process (FastAPI's TestClient), with real token files and a real landing area.

No Prefect server here (``prefect_api_url=""``): the answer says the nightly run will load the
file — the path a dropped event takes. The event-driven path runs against a real server in
tests/flows/test_operations_e2e.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from duikou_settings import Settings
from tasks.landing.intake_tokens import (
    TokenRegistry,
    TokenStoreError,
    create_token,
    hash_token,
    read_tokens,
    revoke_tokens,
)
from warehouse.keys import submission_key

FORM = b"\xe4\xb9\xa1(\xe9\x95\x87),x\n" * 20  # the bytes are never parsed here: only stored and hashed


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[tuple[TestClient, Settings, dict[str, str]]]:
    from flows.intake import create_app

    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=4096)
    tokens = {d: create_token(settings.resolved_intake_tokens_file, d, replace=False)[0]
              for d in ("education", "health", "tourism")}
    with TestClient(create_app(settings, prefect_api_url="")) as client:
        yield client, settings, tokens


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _landed(settings: Settings) -> list[Path]:
    """Every file in the landing area, hidden ones and half-written ones included."""
    return sorted(p for p in settings.landing_dir.rglob("*") if p.is_file()) if settings.landing_dir.exists() else []


def test_a_health_token_cannot_submit_for_education_and_nothing_is_written(intake) -> None:  # type: ignore[no-untyped-def]
    client, settings, tokens = intake
    response = client.post("/submissions", headers=_auth(tokens["health"]),
                           data={"period": "2017-05", "department": "education"},
                           files={"file": ("教育扶贫月报.xlsx", FORM)})
    assert response.status_code == 403
    assert "health" in response.json()["detail"]
    assert _landed(settings) == []
    assert not (settings.resolved_data_dir / "warehouse.sqlite").exists()


def test_the_department_comes_from_the_token(intake) -> None:  # type: ignore[no-untyped-def]
    client, settings, tokens = intake
    response = client.post("/submissions", headers=_auth(tokens["tourism"]), data={"period": "2016-10"},
                           files={"file": ("巴旺乡 form v2.xlsx", FORM)})
    assert response.status_code == 202, response.text
    body = response.json()
    submission_id = submission_key("tourism", hashlib.sha256(FORM).hexdigest())
    assert body["submission_id"] == submission_id
    assert body["department"] == "tourism" and body["period"] == "2016-10"
    assert body["original_name"] == "巴旺乡 form v2.xlsx"
    assert body["event"].startswith("not sent") and "nightly" in body["event"]
    stored = settings.landing_dir / "tourism" / "2016-10" / f"{submission_id}.xlsx"  # the server's name
    assert stored.read_bytes() == FORM
    assert [p.name for p in _landed(settings) if not p.name.startswith(".")] == [stored.name]

    status = client.get(f"/submissions/{submission_id}", headers=_auth(tokens["tourism"]))
    assert status.status_code == 200
    assert status.json()["status"] == "received" and status.json()["receipt"] is None
    refused = client.get(f"/submissions/{submission_id}", headers=_auth(tokens["health"]))
    assert refused.status_code == 404  # another department's id: answered like an unknown one


def test_the_receive_step_reads_the_department_s_file_name_from_the_sidecar(intake) -> None:  # type: ignore[no-untyped-def]
    from tasks.submission.journey import receive

    client, settings, tokens = intake
    body = client.post("/submissions", headers=_auth(tokens["tourism"]), data={"period": "2016-10"},
                       files={"file": ("巴旺乡 form v2.xlsx", FORM)}).json()
    received = receive(settings.landing_dir / "tourism" / "2016-10" / f"{body['submission_id']}.xlsx",
                       "tourism", "2016-10")
    assert received.original_name == "巴旺乡 form v2.xlsx"
    assert received.received_at.isoformat() == body["received_at"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer dk_00000000_forged"}, {"Authorization": "Basic x"}])
def test_missing_or_unknown_tokens_are_refused(intake, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    client, settings, _ = intake
    response = client.post("/submissions", headers=headers, data={"period": "2016-10"},
                           files={"file": ("a.xlsx", FORM)})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/submissions/0123456789abcdef", headers=headers).status_code == 401
    assert _landed(settings) == []


def test_an_oversized_body_is_refused_from_its_length_before_it_is_read(intake) -> None:  # type: ignore[no-untyped-def]
    client, settings, tokens = intake
    big = b"x" * (settings.max_upload_bytes + 70 * 1024)
    response = client.post("/submissions", headers=_auth(tokens["tourism"]), data={"period": "2016-10"},
                           files={"file": ("big.csv", big)})
    assert response.status_code == 413
    assert _landed(settings) == []


def test_a_streamed_body_is_cut_off_at_the_limit(intake) -> None:  # type: ignore[no-untyped-def]
    client, settings, tokens = intake
    boundary = "duikouboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"period\"\r\n\r\n2016-10\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()

    def body() -> Iterator[bytes]:  # no Content-Length: chunked, so only counting can stop it
        yield head
        for _ in range(64):
            yield b"y" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post("/submissions", headers={**_auth(tokens["tourism"]),
                                                    "Content-Type": f"multipart/form-data; boundary={boundary}"},
                           content=body())
    assert response.status_code == 413
    assert _landed(settings) == []  # the partial file in landing/.incoming/ was removed


@pytest.mark.parametrize(("data", "name", "status"), [
    ({"period": "2016-13"}, "a.xlsx", 422),
    ({"period": "2016"}, "a.xlsx", 422),  # tourism is monthly
    ({}, "a.xlsx", 422),
    ({"period": "2016-10"}, "a.exe", 415),
])
def test_bad_requests_say_what_is_wrong(intake, data: dict[str, str], name: str, status: int) -> None:  # type: ignore[no-untyped-def]
    client, settings, tokens = intake
    response = client.post("/submissions", headers=_auth(tokens["tourism"]), data=data, files={"file": (name, FORM)})
    assert response.status_code == status
    assert response.json()["detail"]
    assert _landed(settings) == []


def test_unknown_ids_are_not_found(intake) -> None:  # type: ignore[no-untyped-def]
    client, _, tokens = intake
    assert client.get("/submissions/0123456789abcdef", headers=_auth(tokens["tourism"])).status_code == 404
    assert client.get("/submissions/../../etc", headers=_auth(tokens["tourism"])).status_code == 404


def test_tokens_are_stored_hashed_and_rotation_revokes(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "tokens.json"
    first, _ = create_token(path, "health", replace=False)
    assert first not in path.read_text(encoding="utf-8")
    assert path.stat().st_mode & 0o077 == 0
    registry = TokenRegistry(path)
    assert registry.department_for(first) == "health"
    second, record = create_token(path, "health", replace=True)
    assert registry.department_for(first) is None  # re-read after the file changed: no restart
    assert registry.department_for(second) == "health"
    assert [t.token_id for t in read_tokens(path)] == [record.token_id]
    assert revoke_tokens(path, department="health") and registry.department_for(second) is None


def test_hashed_tokens_from_the_environment(tmp_path: Path) -> None:
    token = "dk_feedbeef_" + "s" * 43
    registry = TokenRegistry(tmp_path / "absent.json", f"labour={hash_token(token)}")
    assert registry.department_for(token) == "labour"
    assert registry.department_for(token + "x") is None
    with pytest.raises(TokenStoreError, match="labour"):
        TokenRegistry(tmp_path / "absent.json", "labour=abc")


def test_intake_token_commands_print_the_token_once_and_rotate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from duikou_settings import reset_settings_cache
    from flows.cli import main

    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path / "data"))
    reset_settings_cache()
    try:
        assert main(["intake-token", "create", "health"]) == 0
        first = capsys.readouterr().out.strip()
        assert main(["intake-token", "create", "health", "--rotate"]) == 0
        second = capsys.readouterr().out.strip()
        assert main(["intake-token", "list"]) == 0
        listing = capsys.readouterr().out
        assert main(["intake-token", "create", "finance"]) == 2
    finally:
        reset_settings_cache()
    registry = TokenRegistry(tmp_path / "data" / "secrets" / "intake-tokens.json")
    assert registry.department_for(first) is None and registry.department_for(second) == "health"
    assert listing.count("health") == 1 and second not in listing
