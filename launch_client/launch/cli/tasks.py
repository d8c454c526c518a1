"""`launch tasks send`: one request to an endpoint, whatever its type. A sync endpoint answers
the call directly; on an async endpoint the task is queued and the command waits for its result;
a streaming endpoint's values are printed one line each as they arrive. So a person can try any
endpoint the same way."""

from __future__ import annotations

import json
from typing import Any

import click

from launch.model_endpoint import AsyncEndpoint, EndpointRequest, EndpointResponse, StreamingEndpoint

from .failures import CliError
from .output import print_fields, print_json, print_text
from .parsing import json_object
from .state import CliState, pass_state


def _result_value(response: EndpointResponse) -> Any:
    if response.result is None:
        return None
    try:
        return json.loads(response.result)
    except json.JSONDecodeError:
        return response.result


def response_record(endpoint: str, task_id: str | None, response: EndpointResponse) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "task_id": task_id,
        "status": response.status,
        "result": _result_value(response),
        "result_url": response.result_url,
        "traceback": response.traceback,
    }


@click.group("tasks")
def tasks_group() -> None:
    """Send requests to endpoints."""


def stream_record(response: EndpointResponse) -> dict[str, Any]:
    """One streamed value (or the failure that ended the stream) as `-o json` prints it."""
    return {"status": response.status, "result": _result_value(response), "traceback": response.traceback}


def _print_line(value: Any) -> None:
    """One JSON value on one line, written at once (a pipe sees each value as it arrives)."""
    click.echo(json.dumps(value, ensure_ascii=False))


def _send_streaming(state: CliState, target: StreamingEndpoint, request: EndpointRequest, timeout: float) -> str:
    """Prints each response as it arrives: its result as JSON (one line each), or with `-o json`
    one object per line; a failure's traceback is printed as text. Returns the last status."""
    status = "SUCCESS"
    with target.predict(request, timeout=timeout) as responses:
        for response in responses:
            status = response.status
            if state.json:
                _print_line(stream_record(response))
            elif response.status == "SUCCESS":
                _print_line(_result_value(response))
            elif response.traceback:
                print_text(response.traceback)
    return status


@tasks_group.command("send")
@click.argument("endpoint")
@click.option("--args", "args_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--url", help="Send this URL instead of --args.")
@click.option("--return-pickled", is_flag=True, help="Store the result pickled and print its result_url.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300,
    show_default=True,
    help="Seconds to wait for the result (on a streaming endpoint: for the whole stream).",
)
@pass_state
def tasks_send(
    state: CliState, endpoint: str, args_json: str | None, url: str | None, return_pickled: bool, timeout: float
) -> None:
    """Send one request to ENDPOINT and print its status, result and traceback (on a streaming
    endpoint: each value as it arrives, one line each). Exits 1 when the request did not succeed."""
    if (args_json is None) == (url is None):
        raise click.UsageError("give exactly one of --args and --url")
    args = json_object(args_json, "--args") if args_json is not None else None
    request = EndpointRequest(url=url, args=args, return_pickled=return_pickled)
    target = state.client().get_model_endpoint(endpoint)
    if target is None:
        raise CliError(f"NOT_FOUND: model endpoint '{endpoint}' not found")
    task_id: str | None = None
    if isinstance(target, StreamingEndpoint):
        status = _send_streaming(state, target, request, timeout)
        if status != "SUCCESS":
            raise CliError(f"request to '{endpoint}' finished with status {status}")
        return
    if isinstance(target, AsyncEndpoint):
        future = target.predict(request)
        task_id = future.async_task_id
        response = future.get(timeout=timeout)
    else:
        response = target.predict(request, timeout=timeout)
    record = response_record(endpoint, task_id, response)
    if state.json:
        print_json(record)
    else:
        shown = {k: v for k, v in record.items() if v is not None and k != "traceback"}
        if "result" in shown:
            shown["result"] = json.dumps(shown["result"])
        print_fields(list(shown.items()))
        if response.traceback:
            print_text(response.traceback)
    if response.status != "SUCCESS":
        raise CliError(f"request to '{endpoint}' finished with status {response.status}")
