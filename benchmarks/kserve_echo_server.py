"""KServe's Python model server with an echo model, and a gRPC Open Inference Protocol client for it.

Why: KServe's model server is the peer a Launch sync endpoint is measured against (DESIGN.md, "The
data path"). This file runs only in its own venv, `benchmarks/.venv-kserve` (kserve's pins must never
touch the project's venv); `benchmarks/sync_predict.py` creates that venv, starts `serve` as a
subprocess and runs `client` as another, which prints its measurements as JSON.

The client uses raw grpc.aio stubs that kserve ships (`kserve.protocol.grpc.grpc_predict_v2_pb2*`,
`GRPCInferenceService/ModelInfer`), not `kserve.InferenceGRPCClient`, so that, like the bare grpc path,
it measures the server and not a client library's extra work. The request carries the echo args as
one BYTES tensor of JSON (`{"x": 1}`), the model calls `echo(**args)` and answers JSON in one BYTES
tensor: the same per-request work as the Launch and Ray Serve echo paths.

Server settings for a fair comparison (the other paths run with access logs off): the per-request
INFO lines of kserve's gRPC LoggingInterceptor and its latency log are switched off, and both
listeners are moved from all interfaces to 127.0.0.1 (kserve hard-codes `[::]` and `0.0.0.0`;
this workplace keeps test servers on loopback).

    .venv-kserve/bin/python benchmarks/kserve_echo_server.py serve --grpc-port N --http-port M
    .venv-kserve/bin/python benchmarks/kserve_echo_server.py client --target 127.0.0.1:N   # prints JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared harness lives beside this file

from grpc_echo_server import LoadPlan, echo, measure_async  # noqa: E402

MODEL = "echo"


def _keep_on_loopback(host: str) -> None:
    """Rebinds kserve's gRPC (`[::]:port`) and uvicorn (`0.0.0.0`) listeners to `host`."""
    import uvicorn
    from grpc.aio import _server

    add_port = _server.Server.add_insecure_port

    def add_insecure_port(self: Any, address: str) -> int:
        return add_port(self, f"{host}:{address.rsplit(':', 1)[1]}")

    _server.Server.add_insecure_port = add_insecure_port  # type: ignore[method-assign]

    config_init = uvicorn.Config.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = host
        config_init(self, *args, **kwargs)

    uvicorn.Config.__init__ = init  # type: ignore[method-assign]


def serve(grpc_port: int, http_port: int, host: str) -> None:
    """Runs kserve.ModelServer with one echo model until SIGTERM (kserve installs its own handlers)."""
    _keep_on_loopback(host)
    import kserve
    from kserve.logging import logger
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class EchoModel(kserve.Model):
        """Echo over the Open Inference Protocol: BYTES tensor of JSON args in, JSON result out."""

        def __init__(self) -> None:
            super().__init__(MODEL)
            self.ready = True

        async def predict(
            self,
            payload: InferRequest,
            headers: dict[str, str] | None = None,
            response_headers: dict[str, str] | None = None,
        ) -> InferResponse:
            raw = payload.inputs[0].data[0]
            result = json.dumps(echo(**json.loads(raw)))
            return InferResponse(
                response_id=payload.id or "",
                model_name=MODEL,
                infer_outputs=[InferOutput(name="result", shape=[1], datatype="BYTES", data=[result])],
            )

    server = kserve.ModelServer(grpc_port=grpc_port, http_port=http_port, enable_latency_logging=False)
    logger.setLevel(logging.WARNING)  # LoggingInterceptor logs every gRPC call at INFO
    print(f"PORT {grpc_port}", flush=True)
    server.start([EchoModel()])


async def client(target: str, plan: LoadPlan) -> dict[str, Any]:
    """Waits for the model to be ready, then drives ModelInfer over one grpc.aio channel."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(
        model_name=MODEL,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="args",
                datatype="BYTES",
                shape=[1],
                contents=pb.InferTensorContents(bytes_contents=[json.dumps({"x": 1}).encode()]),
            )
        ],
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            try:
                if (await stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=2)).ready:
                    break
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"kserve model not ready at {target} after 60 s")
            await asyncio.sleep(0.1)

        async def call() -> None:
            reply = await stub.ModelInfer(request, timeout=30)
            got = json.loads(reply.outputs[0].contents.bytes_contents[0])
            if got != {"x": 1}:
                raise AssertionError(f"unexpected reply {reply}")

        return await measure_async(call, plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--grpc-port", type=int, required=True)
    p_serve.add_argument("--http-port", type=int, required=True)
    p_serve.add_argument("--host", default="127.0.0.1")
    p_client = sub.add_parser("client")
    p_client.add_argument("--target", required=True)
    LoadPlan().add_cli(p_client)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.grpc_port, args.http_port, args.host)
    else:
        print(json.dumps(asyncio.run(client(args.target, LoadPlan.from_cli(args)))))


if __name__ == "__main__":
    main()
