import io
from pathlib import Path

import yaml

from streamspace.domain.convert_cli import main
from streamspace.domain.templates import TEMPLATE_API_VERSION

LEGACY = Path(__file__).resolve().parents[2] / "crds" / "legacy"


def test_converts_every_legacy_file_to_one_stream():
    out = io.StringIO()
    files = sorted(str(p) for p in LEGACY.glob("*.yaml"))
    assert main(files, stdout=out) == 0
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert len(docs) == len(files)
    assert all(doc["apiVersion"] == TEMPLATE_API_VERSION and "kasmvnc" not in doc["spec"] for doc in docs)


def test_reads_stdin_and_writes_output_file(tmp_path):
    target = tmp_path / "out.yaml"
    source = io.StringIO((LEGACY / "firefox.yaml").read_text())
    assert main(["-", "-o", str(target)], stdin=source) == 0
    assert yaml.safe_load(target.read_text())["metadata"]["name"] == "firefox"


def test_reports_problems_with_location_and_prints_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: stream.streamspace.io/v1alpha1\nkind: Template\nmetadata: {name: x}\n"
        "spec: {displayName: X, baseImage: x, kasmvnc: {port: 70000}}\n"
    )
    out = io.StringIO()
    assert main([str(LEGACY / "firefox.yaml"), str(bad), str(tmp_path / "missing.yaml")], stdout=out) == 1
    assert out.getvalue() == ""
    err = capsys.readouterr().err
    assert f"{bad}#1: spec.kasmvnc.port:" in err
    assert "missing.yaml: cannot read" in err
