"""Deploy the image with the SageMaker Python SDK's local mode and ask it for one image.

Run by tests/container/test_image.py with the SDK's own interpreter (the SDK lives in a virtual
environment of its own: its pins conflict with the project's):

    python sagemaker_local_mode.py IMAGE file:///path/to/model.tar.gz PORT [ANSWER_FILE]

Local mode needs no AWS account: the SDK's LocalSession only wants a region and credentials to
exist (fake ones do; nothing is called with them for a local image and a file:// model), and
Docker Compose (Debian's ``docker-compose``). It extracts model.tar.gz next to itself, mounts
that directory at /opt/ml/model, runs ``IMAGE serve`` through Compose, waits for /ping, then
sends /invocations. Prints one JSON line: the answer's format, model and first bytes, and writes
the same JSON to ANSWER_FILE when given (Compose relays the container's log to the same stdout,
where a line of it can run into this one).
"""

from __future__ import annotations

import base64
import json
import sys

import sagemaker.local.entities
from sagemaker.deserializers import JSONDeserializer
from sagemaker.local import LocalSession
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import JSONSerializer

# The SDK gives the container 120 s to answer /ping 200; a loaded 2-core machine needs more to
# start Ray and warm up. SageMaker itself allows up to ContainerStartupHealthCheckTimeoutInSeconds.
sagemaker.local.entities.HEALTH_CHECK_TIMEOUT_LIMIT = 600


def main(image: str, model_data: str, port: int, answer_file: str | None = None) -> int:
    session = LocalSession()
    session.config = {"local": {"local_code": True, "serving_port": port}}
    # No usage report to AWS (the SDK's telemetry call would only fail here, offline).
    session.sagemaker_config = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    model = Model(
        image_uri=image,
        model_data=model_data,
        role="arn:aws:iam::000000000000:role/local-mode",  # never used in local mode, but required
        sagemaker_session=session,
        env={"SDTURBO_OFFLINE": "1"},
        predictor_cls=Predictor,
        name="sd-turbo-local-mode",
    )
    predictor = model.deploy(
        initial_instance_count=1,
        instance_type="local",
        serializer=JSONSerializer(),
        deserializer=JSONDeserializer(),
    )
    try:
        answer = predictor.predict({"prompt": "a lighthouse, local mode", "width": 64, "height": 64, "seed": 3})
        image_bytes = base64.b64decode(answer["image"])
        summary = json.dumps({"format": answer["format"], "model": answer["model"]["id"], "head": image_bytes[:3].hex()})
        print(summary)
        if answer_file:
            with open(answer_file, "w") as out:
                out.write(summary)
    finally:
        predictor.delete_endpoint()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5]))
