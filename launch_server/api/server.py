"""The grpc.aio server factory: every launch.v1 service, the standard health service and server
reflection, behind the auth-and-errors interceptor."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from launch.v1 import (
    batch_job_pb2,
    batch_job_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    model_bundle_pb2,
    model_bundle_pb2_grpc,
    model_endpoint_pb2,
    model_endpoint_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)

from launch_server.api.auth import AuthErrorsInterceptor
from launch_server.api.batch_jobs import BatchJobServicer
from launch_server.api.bundles import ModelBundleServicer
from launch_server.api.endpoints import ModelEndpointServicer
from launch_server.api.inference import InferenceServicer
from launch_server.api.rpc_metrics import RpcMetricsInterceptor
from launch_server.api.tasks import TaskServicer
from launch_server.domain.keys import ApiKeyService
from launch_server.observability.exposition import ServerMetrics
from launch_server.wire.limits import MESSAGE_SIZE_OPTIONS

SERVICES = {
    "launch.v1.ModelBundleService": model_bundle_pb2,
    "launch.v1.ModelEndpointService": model_endpoint_pb2,
    "launch.v1.InferenceService": inference_pb2,
    "launch.v1.TaskService": task_pb2,
    "launch.v1.BatchJobService": batch_job_pb2,
}


@dataclass(frozen=True)
class Servicers:
    """One servicer per launch.v1 service, built by the composition root."""

    bundles: ModelBundleServicer
    endpoints: ModelEndpointServicer
    inference: InferenceServicer
    tasks: TaskServicer
    batch_jobs: BatchJobServicer


def build_server(
    servicers: Servicers, keys: ApiKeyService, bind: str, metrics: ServerMetrics
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Returns the server (not started), the bound port and the health servicer (so shutdown can
    flip it to NOT_SERVING before draining). RPCs are counted outermost, with the status code the
    client gets."""
    server = grpc.aio.server(
        interceptors=[RpcMetricsInterceptor(metrics), AuthErrorsInterceptor(keys)],
        options=[
            *MESSAGE_SIZE_OPTIONS,
            ("grpc.so_reuseport", 0),
        ],
    )
    model_bundle_pb2_grpc.add_ModelBundleServiceServicer_to_server(servicers.bundles, server)
    model_endpoint_pb2_grpc.add_ModelEndpointServiceServicer_to_server(servicers.endpoints, server)
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(servicers.inference, server)
    task_pb2_grpc.add_TaskServiceServicer_to_server(servicers.tasks, server)
    batch_job_pb2_grpc.add_BatchJobServiceServicer_to_server(servicers.batch_jobs, server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_names = [*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(service_names, server)
    port = server.add_insecure_port(bind)
    if port == 0:
        raise RuntimeError(f"could not bind {bind}")
    return server, port, health_servicer


# Services that need the serving layer (Ray): their health follows it, so a load balancer or a
# script can wait for "launch.v1.InferenceService" while "" (the control plane) is already up.
SERVING_LAYER_SERVICES = ("launch.v1.InferenceService", "launch.v1.TaskService", "launch.v1.BatchJobService")


async def mark_serving(
    health_servicer: health.aio.HealthServicer, serving: bool, names: tuple[str, ...] | None = None
) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in names if names is not None else ("", *SERVICES):
        await health_servicer.set(name, status)


async def follow_serving_layer(health_servicer: health.aio.HealthServicer, ready: asyncio.Event) -> None:
    await mark_serving(health_servicer, False, SERVING_LAYER_SERVICES)
    await ready.wait()
    await mark_serving(health_servicer, True, SERVING_LAYER_SERVICES)
