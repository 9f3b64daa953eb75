"""The DanceCat API through a client generated from its OpenAPI document, without a line
of it changed by hand (docs/API.md, "A generated client"):

    openapi-python-client generate --url http://127.0.0.1:6543/api/v1/openapi.json \\
        --meta none --output-path dancecat_client
    python examples/generated_client.py http://127.0.0.1:6543 dct_... /path/to/chinook.sqlite

It creates a connection and a job, runs the job and waits for the run, pages through the
job's runs, downloads the result as CSV and XLSX (the XLSX streamed to a file), and shows
how a 413 and a 422 arrive: as the API's ``Error``, parsed. ``tests/test_generated_client.py``
runs it against a real ``dancecat serve``.
"""

from __future__ import annotations

import sys
import time
from http import HTTPStatus
from pathlib import Path

from dancecat_client import AuthenticatedClient
from dancecat_client.api.connections import create_connection
from dancecat_client.api.jobs import create_job
from dancecat_client.api.results import download_run_result_csv, download_run_result_xlsx
from dancecat_client.api.runs import get_tracker, list_runs, run_job
from dancecat_client.models import (
    ConnectionInput,
    ConnectionInputDriver,
    Error,
    JobInput,
    RunStatus,
)

QUERY = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId"


def main(base_url: str, token: str, database: str) -> None:
    client = AuthenticatedClient(base_url=f"{base_url}/api/v1", token=token, timeout=60.0)

    # 422: the API names the refused field.
    refused = create_connection.sync_detailed(
        client=client,
        body=ConnectionInput(name="no host", driver=ConnectionInputDriver.POSTGRESQL, database="x"),
    )
    assert refused.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert isinstance(refused.parsed, Error)
    print(f"422 {refused.parsed.error.code}: {refused.parsed.error.field}")

    # 413: a body over MAX_BODY_BYTES (1 MiB by default) is the API's JSON error too.
    too_big = create_connection.sync_detailed(
        client=client,
        body=ConnectionInput(name="big", driver=ConnectionInputDriver.SQLITE, database="x" * 2**21),
    )
    assert too_big.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert isinstance(too_big.parsed, Error)
    print(f"413 {too_big.parsed.error.code}")

    connection = create_connection.sync(
        client=client,
        body=ConnectionInput(
            name="chinook", driver=ConnectionInputDriver.SQLITE, database=database
        ),
    ).connection
    job = create_job.sync(
        client=client,
        body=JobInput(name="artists", connection_id=connection.id, query=QUERY),
    ).job
    print(f"job {job.id} on connection {connection.id}")

    for _ in range(3):
        tracker = run_job.sync(job.id, client=client).tracker
        while tracker.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            time.sleep(0.2)
            tracker = get_tracker.sync(tracker.id, client=client).tracker
        print(f"run {tracker.id}: {tracker.status.value}, {tracker.row_count} rows")
        assert tracker.status is RunStatus.SUCCESS

    # Every list is paged the same way: hand next_cursor back as cursor.
    seen, cursor = [], None
    while True:
        page = list_runs.sync(
            client=client, job=job.id, limit=2, **({"cursor": cursor} if cursor else {})
        )
        seen += [run.id for run in page.runs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    print(f"{len(seen)} runs, newest first: {seen}")

    csv_text = download_run_result_csv.sync(tracker.id, client=client)
    print(f"CSV: {len(csv_text.splitlines())} lines, header {csv_text.splitlines()[0]}")

    # A file is best streamed: the generated client's httpx client does that.
    target = Path(f"Result_tid_{tracker.id}.xlsx")
    with client.get_httpx_client().stream("GET", f"/trackers/{tracker.id}/result.xlsx") as answer:
        answer.raise_for_status()
        with target.open("wb") as sink:
            for chunk in answer.iter_bytes():
                sink.write(chunk)
    whole = download_run_result_xlsx.sync_detailed(tracker.id, client=client).content
    assert target.read_bytes() == whole and whole.startswith(b"PK")
    print(f"XLSX: {target} ({len(whole)} bytes)")


if __name__ == "__main__":
    main(*sys.argv[1:4])
