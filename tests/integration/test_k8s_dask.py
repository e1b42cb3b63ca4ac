"""deploy/k8s/dask: the DaskCluster resource of the Dask Kubernetes operator, rendered by the
real kustomize and validated offline. The CRD's schema is not bundled with kubernetes-validate,
so its parts are checked as what the operator makes of them: the worker and scheduler specs as
Pods, the scheduler's service as a Service (strict Kubernetes schemas), and the worker's Dask
memory limit equal to its container's limit (Dask must act on memory before the OOM killer)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.integration.test_k8s import K8S, K8S_VERSIONS, render

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    docs = render(K8S / "dask")
    assert [d["kind"] for d in docs] == ["DaskCluster"]
    return docs[0]


def test_daskcluster_is_the_operators_resource(cluster: dict[str, Any]) -> None:
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    spec = cluster["spec"]
    assert spec["worker"]["replicas"] >= 1
    assert set(spec) == {"worker", "scheduler"}
    assert set(spec["scheduler"]) == {"spec", "service"}
    selector = spec["scheduler"]["service"]["selector"]
    assert selector == {
        "dask.org/cluster-name": cluster["metadata"]["name"],
        "dask.org/component": "scheduler",
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_pod_and_service_specs_validate_strictly(cluster: dict[str, Any], version: str) -> None:
    for part in ("worker", "scheduler"):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"dask-{part}"},
            "spec": cluster["spec"][part]["spec"],
        }
        kubernetes_validate.validate(pod, version, strict=True)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dask-scheduler"},
        "spec": cluster["spec"]["scheduler"]["service"],
    }
    kubernetes_validate.validate(service, version, strict=True)


def test_worker_memory_limit_is_the_containers(cluster: dict[str, Any]) -> None:
    from dask.utils import parse_bytes

    (worker,) = cluster["spec"]["worker"]["spec"]["containers"]
    args = worker["args"]
    dask_limit = parse_bytes(args[args.index("--memory-limit") + 1])
    container_limit = parse_bytes(worker["resources"]["limits"]["memory"] + "B")
    assert dask_limit == container_limit
    scheduler_ports = {
        p["name"] for p in cluster["spec"]["scheduler"]["spec"]["containers"][0]["ports"]
    }
    targets = {p["targetPort"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    assert targets <= scheduler_ports


def test_workers_have_the_local_clusters_memory_settings(cluster: dict[str, Any]) -> None:
    """The same thresholds and allocator settings as the LocalCluster the template starts,
    read as Dask reads its environment."""
    import dask.config

    from mlops_template.distributed import WORKER_MEMORY

    (worker,) = cluster["spec"]["worker"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in worker["env"]}
    config = dask.config.collect_env(env)["distributed"]
    assert config["worker"]["memory"] == {
        key.rsplit(".", 1)[1]: value
        for key, value in WORKER_MEMORY.items()
        if key.startswith("distributed.worker.memory.")
    }
    prefix = "distributed.nanny.pre-spawn-environ."
    spawned = {k.removeprefix(prefix): v for k, v in WORKER_MEMORY.items() if k.startswith(prefix)}
    assert {k: env[k] for k in spawned} == {k: str(v) for k, v in spawned.items()}
