import copy
from pathlib import Path

import pytest
import yaml

from streamspace.domain.errors import ValidationError
from streamspace.domain.templates import (
    API_VERSION,
    AppType,
    Capability,
    convert_template_manifest,
    merge_template_patch,
    normalise_template_manifest,
    parse_template_spec,
    review_template_spec,
    stream_port,
    template_from_api,
    template_to_api,
    validate_template_spec,
)

CRDS = Path(__file__).resolve().parents[2] / "crds"


def minimal_spec(**overrides):
    spec = {"displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest", "vnc": {}}
    spec.update(overrides)
    return spec


def load(path):
    return yaml.safe_load(path.read_text())


# --- stream port rule -----------------------------------------------------------------------------


def test_stream_port_prefers_enabled_vnc():
    assert stream_port(minimal_spec(vnc={"port": 5901}, webapp={"port": 8080}, ports=[{"containerPort": 1}])) == 5901
    assert stream_port(minimal_spec()) == 3000  # vnc defaults


def test_stream_port_then_webapp_then_first_port():
    assert stream_port(minimal_spec(vnc={"enabled": False}, webapp={"port": 8443})) == 8443
    assert stream_port(minimal_spec(vnc=None, ports=[{"containerPort": 8080}, {"containerPort": 9090}])) == 8080
    assert stream_port(minimal_spec(vnc=None, kasmvnc={"enabled": True, "port": 6901})) == 6901


def test_no_stream_port_is_invalid():
    problems = validate_template_spec(minimal_spec(vnc={"enabled": False}))
    assert problems == ["spec: no stream port: enable vnc, set webapp.port, or list at least one port"]


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (minimal_spec(baseImage=None), "spec.baseImage"),
        (minimal_spec(baseImage="not an image!"), "spec.baseImage"),
        (minimal_spec(displayName=""), "spec.displayName"),
        (minimal_spec(vnc={"port": 70000}), "spec.vnc.port"),
        (minimal_spec(vnc={"port": True}), "spec.vnc.port"),
        (minimal_spec(vnc={"protocol": "vnc"}), "spec.vnc.protocol"),
        (minimal_spec(ports=[{"containerPort": 0}]), "spec.ports[0].containerPort"),
        (minimal_spec(ports=[{"containerPort": 80, "protocol": "SCTP"}]), "spec.ports[0].protocol"),
        (minimal_spec(ports=[{"name": "Way_Too_Long_Name", "containerPort": 80}]), "spec.ports[0].name"),
        (minimal_spec(capabilities=["Network", 7]), "spec.capabilities[1]"),
        (minimal_spec(defaultResources={"memory": "lots"}), "spec.defaultResources.memory"),
        (minimal_spec(defaultResources={"memory": "1Gi", "limits": {"cpu": "1"}}), "spec.defaultResources"),
        (
            minimal_spec(defaultResources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
            "spec.defaultResources.requests.cpu",
        ),
        (minimal_spec(appType="game"), "spec.appType"),
        (minimal_spec(icon="javascript:alert(1)"), "spec.icon"),
        (minimal_spec(env=[{"value": "x"}]), "spec.env[0].name"),
        (minimal_spec(env=[{"name": "A", "value": "x", "valueFrom": {}}]), "spec.env[0].valueFrom"),
        (minimal_spec(volumeMounts=[{"name": "user-home", "mountPath": "config"}]), "spec.volumeMounts[0].mountPath"),
        (
            minimal_spec(volumeMounts=[{"name": "h", "mountPath": "/c", "subPath": "../x"}]),
            "spec.volumeMounts[0].subPath",
        ),
        (minimal_spec(webapp={"enabled": True}, vnc=None), "spec.webapp.port"),
        (minimal_spec(kasmvnc={"enabled": True}), "spec.kasmvnc"),
        (minimal_spec(colour="blue"), "spec.colour"),
        (minimal_spec(tags="a,b"), "spec.tags"),
        (minimal_spec(runAsUser=0), "spec.runAsUser"),
        (minimal_spec(runAsUser="1000"), "spec.runAsUser"),
        (minimal_spec(runAsUser=1000, runAsGroup=-1), "spec.runAsGroup"),
        (minimal_spec(runAsGroup=1000), "spec.runAsGroup"),
    ],
)
def test_invalid_specs_name_the_field(spec, field):
    problems = validate_template_spec(spec)
    assert any(problem.startswith(f"{field}:") for problem in problems), problems
    with pytest.raises(ValidationError) as caught:
        parse_template_spec(spec)
    assert caught.value.field.startswith("spec")


def test_unknown_capabilities_of_the_earlier_streamspace_become_tags_with_a_warning():
    # The earlier project's own gimp sample: free-form capabilities its CRD allowed.
    spec = minimal_spec(capabilities=["Network", "Graphics", "Photo-Editing", "Tablets"], tags=["graphics"])
    review = review_template_spec(spec)
    assert review.problems == ()
    assert len(review.warnings) == 1
    assert review.warnings[0].startswith("spec.capabilities: unknown capabilities Graphics, Photo-Editing, Tablets")
    assert review.spec is not None
    assert review.spec.capabilities == (Capability.NETWORK,)
    assert review.spec.tags == ("graphics", "Graphics", "Photo-Editing", "Tablets")
    converted = review.spec.to_spec()
    assert converted["capabilities"] == ["Network"]
    assert review_template_spec(converted).warnings == ()  # converted once, nothing left to warn about
    # An object applied as it was shows the same split through the REST view.
    view = template_to_api({"metadata": {"name": "gimp"}, "spec": spec})
    assert view["capabilities"] == ["Network"]
    assert view["tags"] == ["graphics", "Graphics", "Photo-Editing", "Tablets"]


def test_validation_reports_every_problem():
    problems = validate_template_spec({"vnc": {"port": 0}, "appType": "x"})
    fields = {problem.split(":")[0] for problem in problems}
    assert {"spec.displayName", "spec.baseImage", "spec.vnc.port", "spec.appType"} <= fields


def test_parse_normalises():
    template = parse_template_spec(
        minimal_spec(
            defaultResources={"memory": "2Gi", "cpu": 1},
            env=[{"name": "PUID", "value": 1000}, {"name": "DEBUG", "value": True}],
            capabilities=["Network", "Network"],
            tags=["a", "a", "b"],
        )
    )
    assert template.default_resources == {
        "requests": {"memory": "2Gi", "cpu": "1"},
        "limits": {"memory": "2Gi", "cpu": "1"},
    }
    assert template.env == ({"name": "PUID", "value": "1000"}, {"name": "DEBUG", "value": "true"})
    assert template.capabilities == (Capability.NETWORK,)
    assert template.tags == ("a", "b")
    assert template.app_type is AppType.DESKTOP
    assert template.home_mount_path == "/config"
    spec = template.to_spec()
    assert spec["vnc"] == {"enabled": True, "port": 3000, "protocol": "websocket", "encryption": False}
    assert parse_template_spec(spec) == template  # canonical form is a fixed point


# --- samples and legacy manifests ------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((CRDS / "samples").glob("template-*.yaml")), ids=lambda p: p.name)
def test_samples_are_valid(path):
    doc = load(path)
    assert validate_template_spec(doc["spec"]) == []
    assert normalise_template_manifest(doc)["spec"] == parse_template_spec(doc["spec"]).to_spec()


def test_sample_ports():
    ports = {p.stem: stream_port(load(p)["spec"]) for p in (CRDS / "samples").glob("template-*.yaml")}
    assert ports["template-vscode"] == 8443
    assert ports["template-firefox"] == 3000


@pytest.mark.parametrize("path", sorted((CRDS / "legacy").glob("*.yaml")), ids=lambda p: p.name)
def test_legacy_manifests_convert(path):
    doc = load(path)
    assert doc["apiVersion"] == "stream.streamspace.io/v1alpha1"
    manifest = normalise_template_manifest(doc)
    assert manifest["apiVersion"] == API_VERSION and manifest["kind"] == "Template"
    assert "kasmvnc" not in manifest["spec"] and "status" not in manifest
    assert set(manifest["spec"]["defaultResources"]) == {"requests", "limits"}
    assert all(isinstance(var.get("value", ""), str) for var in manifest["spec"].get("env", []))
    assert normalise_template_manifest(manifest) == manifest  # idempotent


def test_legacy_stream_ports_survive_conversion():
    converted = {p.stem: normalise_template_manifest(load(p)) for p in (CRDS / "legacy").glob("*.yaml")}
    assert stream_port(converted["firefox"]["spec"]) == 3000
    assert stream_port(converted["code-server"]["spec"]) == 8443  # kasmvnc disabled -> first port
    assert stream_port(converted["libreoffice"]["spec"]) == 3000  # old default port


def test_normalise_refuses_other_documents():
    with pytest.raises(ValidationError) as caught:
        normalise_template_manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert caught.value.field == "apiVersion"
    with pytest.raises(ValidationError) as caught:
        normalise_template_manifest({"apiVersion": API_VERSION, "kind": "Session", "metadata": {"name": "x"}})
    assert caught.value.field == "kind"
    with pytest.raises(ValidationError) as caught:
        normalise_template_manifest({"apiVersion": API_VERSION, "kind": "Template", "spec": minimal_spec()})
    assert caught.value.field == "metadata.name"


def test_normalise_fixes_names_and_drops_server_metadata():
    doc = {
        "apiVersion": API_VERSION,
        "kind": "Template",
        "metadata": {"name": "My_Firefox", "uid": "123", "resourceVersion": "9", "labels": {"a": "b"}},
        "spec": minimal_spec(),
    }
    assert normalise_template_manifest(doc)["metadata"] == {
        "name": "my-firefox",
        "labels": {"a": "b"},
        "annotations": {
            "stream.space/original-name": "My_Firefox",
            "stream.space/conversion-notes": (
                "metadata.name: 'My_Firefox' is not a DNS-1123 label; renamed to 'my-firefox'"
            ),
        },
    }
    conversion = convert_template_manifest(doc)
    assert conversion.warnings == ("metadata.name: 'My_Firefox' is not a DNS-1123 label; renamed to 'my-firefox'",)


def test_conversion_reports_every_problem_of_a_document():
    conversion = convert_template_manifest(
        {"apiVersion": "v1", "kind": "Template", "metadata": {}, "spec": {"vnc": {"port": 0}}}
    )
    assert conversion.manifest is None
    fields = [problem.split(":")[0] for problem in conversion.problems]
    assert fields == ["apiVersion", "metadata.name", "spec.displayName", "spec.baseImage", "spec.vnc.port"]


# --- REST view ------------------------------------------------------------------------------------


def stored(spec, **meta):
    return {
        "apiVersion": API_VERSION,
        "kind": "Template",
        "metadata": {
            "name": "firefox",
            "namespace": "streamspace",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "resourceVersion": "7",
            **meta,
        },
        "spec": spec,
        "status": {"phase": "Ready", "message": "ok"},
    }


def test_template_to_api_shape():
    obj = stored(load(CRDS / "samples" / "template-firefox.yaml")["spec"])
    api = template_to_api(obj)
    assert {
        "name",
        "namespace",
        "displayName",
        "description",
        "category",
        "appType",
        "icon",
        "baseImage",
        "defaultResources",
        "ports",
        "env",
        "vnc",
        "capabilities",
        "tags",
        "status",
        "createdAt",
    } <= set(api)
    assert api["defaultResources"] == {"memory": "2Gi", "cpu": "2"}  # the limits
    assert api["vnc"] == {"enabled": True, "port": 3000, "protocol": "websocket", "encryption": False}
    assert api["status"] == {"phase": "Ready", "message": "ok"}
    assert api["createdAt"] == "2025-01-01T00:00:00Z"


def test_template_to_api_reads_legacy_and_broken_objects():
    legacy = stored({"displayName": "X", "kasmvnc": {"enabled": True, "port": 6901}})
    assert template_to_api(legacy)["vnc"] == {
        "enabled": True,
        "port": 6901,
        "protocol": "websocket",
        "encryption": False,
    }
    assert template_to_api({"metadata": {"name": "x"}})["vnc"]["enabled"] is False


@pytest.mark.parametrize("sample", sorted((CRDS / "samples").glob("template-*.yaml")), ids=lambda p: p.name)
def test_api_round_trip(sample):
    spec = parse_template_spec(load(sample)["spec"]).to_spec()
    if spec.get("defaultResources"):
        # The REST view is flat (the limits); make the stored form flat-equivalent to compare.
        spec["defaultResources"] = {
            "requests": spec["defaultResources"]["limits"],
            "limits": spec["defaultResources"]["limits"],
        }
    api = template_to_api(stored(spec))
    manifest = template_from_api(api, "firefox", "streamspace")
    assert manifest["spec"] == spec
    assert manifest["metadata"] == {"name": "firefox", "namespace": "streamspace"}


def test_template_from_api_minimal_and_errors():
    manifest = template_from_api(
        {"name": "gimp", "displayName": "GIMP", "baseImage": "kasmweb/gimp:1.16.0", "vnc": {"port": 6901}},
        None,
        "ns",
    )
    assert manifest["metadata"]["name"] == "gimp"
    assert manifest["spec"]["vnc"]["port"] == 6901
    with pytest.raises(ValidationError) as caught:
        template_from_api({"name": "x", "displayName": "X", "baseImage": "x", "vnc": {}, "colour": 1}, None, "ns")
    assert caught.value.field == "colour"
    with pytest.raises(ValidationError) as caught:
        template_from_api({"displayName": "X", "baseImage": "x", "vnc": {"port": 70000}}, "x", "ns")
    assert caught.value.field == "vnc.port"
    with pytest.raises(ValidationError) as caught:
        template_from_api({"displayName": "X", "baseImage": "x", "vnc": {}}, "Bad Name", "ns")
    assert caught.value.field == "name"
    with pytest.raises(ValidationError) as caught:
        template_from_api({"name": "a", "displayName": "X", "baseImage": "x", "vnc": {}}, "b", "ns")
    assert caught.value.field == "name"
    with pytest.raises(ValidationError) as caught:
        template_from_api(["not", "an", "object"], "x", "ns")
    assert caught.value.field == "body"


def test_merge_template_patch():
    obj = stored(parse_template_spec(load(CRDS / "samples" / "template-firefox.yaml")["spec"]).to_spec())
    before = copy.deepcopy(obj)
    patched = merge_template_patch(
        obj,
        {"displayName": "Firefox ESR", "vnc": {"port": 5901}, "defaultResources": {"memory": "4Gi"}, "tags": ["esr"]},
    )
    assert obj == before  # input untouched
    spec = patched["spec"]
    assert spec["displayName"] == "Firefox ESR"
    assert spec["vnc"] == {"enabled": True, "port": 5901, "protocol": "websocket", "encryption": False}
    assert spec["defaultResources"] == {
        "requests": {"cpu": "500m", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert spec["tags"] == ["esr"]
    assert spec["baseImage"] == obj["spec"]["baseImage"]
    assert patched["metadata"]["resourceVersion"] == "7"


def test_merge_template_patch_removes_and_validates():
    obj = stored(minimal_spec(category="Web", ports=[{"containerPort": 3000}]))
    assert "category" not in merge_template_patch(obj, {"category": None})["spec"]
    with pytest.raises(ValidationError) as caught:
        merge_template_patch(obj, {"baseImage": None})
    assert caught.value.field == "baseImage"
    with pytest.raises(ValidationError) as caught:
        merge_template_patch(obj, {"vnc": {"port": 0}})
    assert caught.value.field == "vnc.port"
    with pytest.raises(ValidationError) as caught:
        merge_template_patch(obj, {"name": "other"})
    assert caught.value.field == "name"
    with pytest.raises(ValidationError) as caught:
        merge_template_patch(obj, {"unknown": 1})
    assert caught.value.field == "unknown"


def test_merge_template_patch_on_legacy_object():
    obj = stored({"displayName": "X", "baseImage": "x", "kasmvnc": {"enabled": True, "port": 3000}})
    spec = merge_template_patch(obj, {"vnc": {"port": 6901}})["spec"]
    assert "kasmvnc" not in spec and spec["vnc"]["port"] == 6901


def test_a_template_opting_into_non_root_keeps_its_user_and_group():
    spec = parse_template_spec(minimal_spec(runAsUser=1000, runAsGroup=1001))
    assert (spec.run_as_user, spec.run_as_group) == (1000, 1001)
    assert {k: spec.to_spec()[k] for k in ("runAsUser", "runAsGroup")} == {"runAsUser": 1000, "runAsGroup": 1001}
    assert "runAsUser" not in parse_template_spec(minimal_spec()).to_spec()
