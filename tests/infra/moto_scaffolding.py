"""Test scaffolding: an in-process moto server plus the operations moto 5.2 lacks.

Why this exists
---------------
The AWS provider reads tags back after creating an Application Auto Scaling scalable target
(``aws_appautoscaling_target``): it calls ``ListTagsForResource`` and, on tag changes,
``TagResource`` / ``UntagResource``. moto 5.2.5 does not implement these three operations for
``application-autoscaling``: the server answers HTTP 500 (``NotImplementedError: The
list_tags_for_resource action has not been implemented`` in its log), the provider treats 500 as
retryable and the apply hangs until its create timeout. moto also ignores the ``Tags`` argument
of ``RegisterScalableTarget``.

SageMaker in moto 5.2.5 has three more gaps that an apply/plan/update cycle hits:

* ``UpdateEndpoint`` is not implemented (500), so a new image (new model -> new endpoint
  configuration -> blue/green update) cannot be rolled out;
* ``CreateEndpoint`` drops ``DeploymentConfig`` and ``DescribeEndpoint`` never returns
  ``LastDeploymentConfig``; the provider reads ``deployment_config`` from it, so every plan
  wants to replace the endpoint;
* ``DescribeModel`` returns an empty ``VpcConfig`` and ``DescribeEndpointConfig`` an empty
  ``DataCaptureConfig`` for resources created without them (AWS omits both); the provider
  maps them to blocks that force replacement.

This module adds minimal, faithful implementations (only in the test process, with a
``ThreadedMotoServer``). Application Auto Scaling:

* ``RegisterScalableTarget`` stores its ``Tags`` for the returned ``ScalableTargetARN``;
* ``ListTagsForResource(ResourceARN)`` returns ``{"Tags": {...}}``;
* ``TagResource(ResourceARN, Tags)`` merges, ``UntagResource(ResourceARN, TagKeys)`` removes;
* an ARN that is not a registered scalable target gets ``ResourceNotFoundException`` (HTTP 400),
  as on AWS; ``DeregisterScalableTarget`` drops the target's tags.

SageMaker:

* ``CreateEndpoint`` keeps ``DeploymentConfig``; ``DescribeEndpoint`` returns it as
  ``LastDeploymentConfig`` (as AWS does for an endpoint created or updated with one);
* ``UpdateEndpoint(EndpointName, EndpointConfigName, DeploymentConfig)`` switches the endpoint
  to the new configuration (validation errors for an unknown endpoint or configuration, as on
  AWS). moto has no deployment engine: the update completes at once (``InService``), there is
  no canary phase and no alarm-driven rollback to observe;
* ``DescribeModel`` / ``DescribeEndpointConfig`` omit empty ``VpcConfig`` / ``DataCaptureConfig``;
* ``CreateModel`` keeps ``EnableNetworkIsolation`` (moto stores False whatever was asked) and
  ``DescribeModel`` returns it.

EC2: ``DescribeSecurityGroupRules`` returns the ``Description`` of rules that reference a
security group or a prefix list (moto keeps it only for CIDR rules).

Anything else the provider calls must be implemented by moto itself: ``MotoServer.errors()``
returns every 5xx line / NotImplementedError from the server log so the tests can assert there
were none (that is how this gap was found).

Call recording: ``MotoServer.calls`` is every AWS API call the server answered, as
``AwsCall(service, action, params)`` with the request parsed by botocore's model of the
operation (the same parser moto uses), in order. ``MotoServer.mark()`` / ``calls_since(mark)``
cut the record into phases (bootstrap as an administrator, release and rollout as the deploy
role), which tests/infra/iam_permissions.py evaluates against a policy.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from dataclasses import dataclass, field

from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import utcnow
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig
from moto.sagemaker.responses import SageMakerResponse
from moto.server import ThreadedMotoServer

from loadtest.ports import free_port

_LOCK = threading.Lock()
_TAGS: dict[str, dict[str, str]] = {}
_INSTALLED = False
_SM_INSTALLED = False
_RECORDER_INSTALLED = False
_EC2_INSTALLED = False
_CALLS: list[AwsCall] = []


@dataclass(frozen=True)
class AwsCall:
    """One API call as AWS would authorise it: the service's model name, the operation, its input."""

    service: str
    action: str
    params: dict = field(default_factory=dict, compare=False, hash=False)
    user_agent: str = field(default="", compare=False, hash=False)

    @property
    def by_terraform(self) -> bool:
        """Sent by Terraform's AWS provider (not by the test's own boto3 read-back)."""
        return "Terraform/" in self.user_agent or "terraform-provider-aws/" in self.user_agent


class ResourceNotFoundException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("ResourceNotFoundException", message)


def _known_target_arns(response: ApplicationAutoScalingResponse) -> set[str]:
    backend = response.applicationautoscaling_backend
    return {t.arn for targets in backend.targets.values() for t in targets.values()}


def _require_target(response: ApplicationAutoScalingResponse, arn: str) -> None:
    if arn not in _known_target_arns(response):
        raise ResourceNotFoundException(f"No scalable target found for ARN {arn}")


def install_application_autoscaling_tagging() -> None:
    """Patch moto's Application Auto Scaling responses (idempotent)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        cls = ApplicationAutoScalingResponse
        original_register = cls.register_scalable_target
        original_deregister = cls.deregister_scalable_target

        def register_scalable_target(self) -> str:
            body = original_register(self)
            tags = self._get_param("Tags") or {}
            arn = json.loads(body)["ScalableTargetARN"]
            with _LOCK:
                _TAGS.setdefault(arn, {}).update(tags)
            return body

        def deregister_scalable_target(self) -> str:
            before = _known_target_arns(self)
            body = original_deregister(self)
            gone = before - _known_target_arns(self)
            with _LOCK:
                for arn in gone:
                    _TAGS.pop(arn, None)
            return body

        def list_tags_for_resource(self) -> str:
            arn = self._get_param("ResourceARN")
            _require_target(self, arn)
            with _LOCK:
                return json.dumps({"Tags": dict(_TAGS.get(arn, {}))})

        def tag_resource(self) -> str:
            arn = self._get_param("ResourceARN")
            _require_target(self, arn)
            with _LOCK:
                _TAGS.setdefault(arn, {}).update(self._get_param("Tags") or {})
            return json.dumps({})

        def untag_resource(self) -> str:
            arn = self._get_param("ResourceARN")
            _require_target(self, arn)
            with _LOCK:
                for key in self._get_param("TagKeys") or []:
                    _TAGS.get(arn, {}).pop(key, None)
            return json.dumps({})

        cls.register_scalable_target = register_scalable_target
        cls.deregister_scalable_target = deregister_scalable_target
        cls.list_tags_for_resource = list_tags_for_resource
        cls.tag_resource = tag_resource
        cls.untag_resource = untag_resource
        _INSTALLED = True


def _parsed_params(response: BaseResponse) -> dict:
    """The request's input as botocore's operation model reads it (moto's own parser)."""
    try:
        response.parse_parameters(response.normalized_request)
        return dict(response.params)
    except Exception:  # noqa: BLE001 - a protocol moto parses by hand: fall back to its query dict
        return {key: (value[0] if isinstance(value, list) and len(value) == 1 else value)
                for key, value in response.querystring.items()}


def install_call_recorder() -> None:
    """Record every call that reaches a moto response class (idempotent)."""
    global _RECORDER_INSTALLED
    with _LOCK:
        if _RECORDER_INSTALLED:
            return
        original_call_action = BaseResponse.call_action

        def call_action(self):
            try:
                action = self._get_action()
            except Exception:  # noqa: BLE001 - unroutable request: moto answers it, nothing to record
                action = None
            if action:
                call = AwsCall(self.boto3_service_name, action, _parsed_params(self),
                               self.headers.get("User-Agent", ""))
                with _LOCK:
                    _CALLS.append(call)
            return original_call_action(self)

        BaseResponse.call_action = call_action
        _RECORDER_INSTALLED = True


def install_security_group_rule_descriptions() -> None:
    """DescribeSecurityGroupRules returns the Description of every rule kind (idempotent).

    moto 5.2.5 keeps a rule's Description only for CIDR rules; a rule that references a security
    group or a prefix list reads back without it, and the provider then plans to set it again.
    """
    global _EC2_INSTALLED
    with _LOCK:
        if _EC2_INSTALLED:
            return
        original_init = SecurityGroupRule.__init__

        def __init__(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            names = ["ec2_backend", "ip_protocol", "group_id", "from_port", "to_port", "ip_range",
                     "source_group", "prefix_list_id"]
            given = {**dict(zip(names, args)), **kwargs}
            self._other_description = (given.get("source_group") or {}).get("Description") or (
                given.get("prefix_list_id") or {}).get("Description")

        SecurityGroupRule.__init__ = __init__
        SecurityGroupRule.description = property(
            lambda self: self.ip_range.get("Description") or getattr(self, "_other_description", None)
        )
        _EC2_INSTALLED = True


def install_sagemaker_fidelity() -> None:
    """Patch moto's SageMaker responses (idempotent); see the module docstring."""
    global _SM_INSTALLED
    with _LOCK:
        if _SM_INSTALLED:
            return
        cls = SageMakerResponse
        original_create = cls.create_endpoint
        original_describe = cls.describe_endpoint
        original_describe_model = cls.describe_model
        original_describe_config = cls.describe_endpoint_config
        original_create_model = cls.create_model

        def create_endpoint(self) -> ActionResult:
            result = original_create(self)
            endpoint = self.sagemaker_backend.endpoints[self._get_param("EndpointName")]
            endpoint.last_deployment_config = self._get_param("DeploymentConfig")
            return result

        def describe_endpoint(self) -> ActionResult:
            response = dict(original_describe(self).result)
            endpoint = self.sagemaker_backend.endpoints[self._get_param("EndpointName")]
            response.pop("last_deployment_config", None)
            response.pop("LastDeploymentConfig", None)
            last = getattr(endpoint, "last_deployment_config", None)
            if last:
                response["LastDeploymentConfig"] = last
            return ActionResult(response)

        def update_endpoint(self) -> ActionResult:
            backend = self.sagemaker_backend
            name = self._get_param("EndpointName")
            config_name = self._get_param("EndpointConfigName")
            endpoint = backend.endpoints.get(name)
            if endpoint is None:
                arn = FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
                raise ValidationError(message=f"Could not find endpoint '{arn}'.")
            if config_name not in backend.endpoint_configs:
                arn = FakeEndpointConfig.arn_formatter(config_name, backend.account_id, backend.region_name)
                raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
            config = backend.endpoint_configs[config_name]
            endpoint.endpoint_config_name = config_name
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
            endpoint.data_capture_config = config.data_capture_config
            deployment = self._get_param("DeploymentConfig")
            if deployment:
                endpoint.last_deployment_config = deployment
            endpoint.endpoint_status = "InService"
            endpoint.last_modified_time = utcnow()
            return ActionResult({"EndpointArn": endpoint.arn})

        def create_model(self):
            result = original_create_model(self)
            model = self.sagemaker_backend._models[self._get_param("ModelName")]
            model.enable_network_isolation = bool(self._get_param("EnableNetworkIsolation", False))
            return result

        def describe_model(self) -> ActionResult:
            response = dict(original_describe_model(self).result)
            vpc = response.get("VpcConfig")
            if not vpc or not any(vpc.values()):
                response.pop("VpcConfig", None)
            model = self.sagemaker_backend._models[self._get_param("ModelName")]
            response["EnableNetworkIsolation"] = model.enable_network_isolation
            return ActionResult(response)

        def describe_endpoint_config(self) -> ActionResult:
            response = dict(original_describe_config(self).result)
            if not response.get("DataCaptureConfig"):
                response.pop("DataCaptureConfig", None)
            return ActionResult(response)

        cls.create_endpoint = create_endpoint
        cls.describe_endpoint = describe_endpoint
        cls.update_endpoint = update_endpoint
        cls.create_model = create_model
        cls.describe_model = describe_model
        cls.describe_endpoint_config = describe_endpoint_config
        _SM_INSTALLED = True


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        self.lines.append(text)


class MotoServer:
    """ThreadedMotoServer on 127.0.0.1 with the scaffolding installed and its log captured."""

    def __init__(self) -> None:
        install_application_autoscaling_tagging()
        install_sagemaker_fidelity()
        install_security_group_rule_descriptions()
        install_call_recorder()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._capture = _Capture()
        self._logger = logging.getLogger("werkzeug")

    def __enter__(self) -> MotoServer:
        self._logger.addHandler(self._capture)
        self._old_level = self._logger.level
        self._logger.setLevel(logging.INFO)
        self._server.start()
        # Backends are process-global: start from an empty account.
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=30).close()
        with _LOCK:
            _CALLS.clear()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()
        self._logger.removeHandler(self._capture)
        self._logger.setLevel(self._old_level)

    @property
    def log(self) -> list[str]:
        return list(self._capture.lines)

    @property
    def calls(self) -> list[AwsCall]:
        with _LOCK:
            return list(_CALLS)

    def mark(self) -> int:
        """A position in the call record (see calls_since)."""
        with _LOCK:
            return len(_CALLS)

    def calls_since(self, mark: int, until: int | None = None) -> list[AwsCall]:
        with _LOCK:
            return list(_CALLS[mark:until])

    def errors(self) -> list[str]:
        """Server-side failures: 5xx responses and unimplemented operations."""
        return [
            line
            for line in self._capture.lines
            if "NotImplementedError" in line or "not been implemented" in line or '" 500' in line
            or '" 501' in line or "Error on request" in line
        ]
