"""The bundle methods of LaunchClient: package a model (pickled, or zipped folders), upload it
and register it; read, list and delete bundles."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import yaml

from launch.v1 import model_bundle_pb2 as bpb

from .client_core import ClientCore
from .find_packages import find_packages_from_imports
from .model_bundle import ModelBundle, bundle_name_of
from .packaging import choose_form, pickle_bundle, read_requirements_file, zip_directories

log = logging.getLogger(__name__)
LaunchModel_T = TypeVar("LaunchModel_T")
# Bytes per UploadModelBundle message: well under the message limit, and small enough that a
# retried upload re-sends little at a time.
UPLOAD_CHUNK = 1 << 20


def encode_app_config(app_config: dict[str, Any] | str | None) -> str:
    """The bundle's app_config as JSON text, from a dict or the path of a YAML file."""
    if app_config is None:
        return ""
    if isinstance(app_config, str):
        try:
            with open(app_config, encoding="utf-8") as f:
                app_config = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"app_config: cannot read YAML file {app_config!r}: {exc}") from None
    if not isinstance(app_config, dict):
        raise ValueError("app_config must be a dict or the path of a YAML file holding a mapping")
    return json.dumps(app_config, allow_nan=False)  # NaN and Infinity are not JSON; the server refuses them


def python_version() -> str:
    """The Python version the bundle is pickled with; the replica checks it matches its own."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


class BundlesApi(ClientCore):
    def _register_bundle(self, spec: bpb.ModelBundleSpec, data: bytes, bundle_url: str | None) -> ModelBundle:
        request_id = uuid.uuid4().hex
        if self.self_hosted:
            if self.upload_bundle_fn is None:
                raise ValueError("Upload_bundle_fn should be registered")
            if bundle_url is None:
                if self.bundle_location_fn is None:
                    raise ValueError("Need either bundle_location_fn or bundle_url to know where to upload bundles")
                bundle_url = self.bundle_location_fn()
            self.upload_bundle_fn(data, bundle_url)
            spec.location = str(bundle_url)
            response = self.connection.call(
                self.connection.bundles.CreateModelBundle,
                bpb.CreateModelBundleRequest(request_id=request_id, bundle=spec),
                idempotent=True,
            )
            return ModelBundle.from_proto(response.model_bundle)
        header = bpb.UploadModelBundleHeader(
            request_id=request_id,
            bundle=spec,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )

        def messages() -> Iterator[bpb.UploadModelBundleRequest]:
            yield bpb.UploadModelBundleRequest(header=header)
            view = memoryview(data)
            for start in range(0, len(data), UPLOAD_CHUNK):
                yield bpb.UploadModelBundleRequest(chunk=bytes(view[start : start + UPLOAD_CHUNK]))

        response = self.connection.call_stream_unary(
            self.connection.bundles.UploadModelBundle, messages, idempotent=True, timeout=3600
        )
        return ModelBundle.from_proto(response.model_bundle)

    def create_model_bundle(
        self,
        model_bundle_name: str,
        env_params: dict[str, str],
        *,
        load_predict_fn: Callable[[LaunchModel_T], Callable[[Any], Any]] | None = None,
        predict_fn_or_cls: Callable[[Any], Any] | None = None,
        requirements: list[str] | None = None,
        model: LaunchModel_T | None = None,
        load_model_fn: Callable[[], LaunchModel_T] | None = None,
        bundle_url: str | None = None,
        app_config: dict[str, Any] | str | None = None,
        globals_copy: dict[str, Any] | None = None,
    ) -> ModelBundle:
        """Pickles exactly one of {predict_fn_or_cls}, {load_predict_fn + model} or
        {load_predict_fn + load_model_fn}, uploads it and registers the bundle.

        With requirements=None they are inferred from the packages imported in globals_copy
        (pass globals()); the user's own modules found there are pickled by value."""
        form = choose_form(predict_fn_or_cls, load_predict_fn, model, load_model_fn)
        if requirements is None:
            inferred = find_packages_from_imports(globals_copy or {})
            requirements = [f"{name}=={version}" for name, version in inferred.items()]
            log.info("Using inferred requirements %s for model bundle %s", requirements, model_bundle_name)
        app_config_json = encode_app_config(app_config)
        data, sources = pickle_bundle(form, predict_fn_or_cls, load_predict_fn, model, load_model_fn, globals_copy)
        spec = bpb.ModelBundleSpec(
            name=model_bundle_name,
            packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
            form=bpb.BundleForm.Value(f"BUNDLE_FORM_{form}"),
            requirements=requirements,
            env_params={k: str(v) for k, v in (env_params or {}).items()},
            metadata=sources,
            app_config_json=app_config_json,
            python_version=python_version(),
        )
        return self._register_bundle(spec, data, bundle_url)

    def create_model_bundle_from_dirs(
        self,
        model_bundle_name: str,
        base_paths: list[str],
        requirements_path: str,
        env_params: dict[str, str],
        load_predict_fn_module_path: str,
        load_model_fn_module_path: str,
        app_config: dict[str, Any] | str | None = None,
    ) -> ModelBundle:
        """Zips the folders (each under its own name), reads the requirements file and registers
        the bundle; module paths such as "my_module1.my_inference_file.f" resolve in the zip."""
        requirements = read_requirements_file(requirements_path)
        app_config_json = encode_app_config(app_config)
        data = zip_directories(base_paths)
        spec = bpb.ModelBundleSpec(
            name=model_bundle_name,
            packaging_type=bpb.PACKAGING_TYPE_ZIP,
            requirements=requirements,
            env_params={k: str(v) for k, v in (env_params or {}).items()},
            metadata={
                "load_predict_fn_module_path": load_predict_fn_module_path,
                "load_model_fn_module_path": load_model_fn_module_path,
            },
            app_config_json=app_config_json,
            python_version=python_version(),
        )
        return self._register_bundle(spec, data, None)

    def get_model_bundle(self, model_bundle: ModelBundle | str) -> ModelBundle:
        response = self.connection.call(
            self.connection.bundles.GetModelBundle,
            bpb.GetModelBundleRequest(name=bundle_name_of(model_bundle)),
            idempotent=True,
        )
        return ModelBundle.from_proto(response.model_bundle)

    def list_model_bundles(self) -> list[ModelBundle]:
        """Every bundle the caller owns, newest first (follows all pages)."""
        pages = self._pages(self.connection.bundles.ListModelBundles, bpb.ListModelBundlesRequest, "model_bundles")
        return [ModelBundle.from_proto(b) for b in pages]

    def delete_model_bundle(self, model_bundle: ModelBundle | str) -> bool:
        response = self.connection.call(
            self.connection.bundles.DeleteModelBundle,
            bpb.DeleteModelBundleRequest(name=bundle_name_of(model_bundle)),
            idempotent=False,
        )
        return response.deleted
