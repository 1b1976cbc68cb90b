import io
from pathlib import Path

import yaml

from streamspace.domain.convert_cli import main
from streamspace.domain.templates import API_VERSION

LEGACY = Path(__file__).resolve().parents[2] / "crds" / "legacy"


def test_converts_every_legacy_file_to_one_stream():
    out = io.StringIO()
    files = sorted(str(p) for p in LEGACY.glob("*.yaml"))
    assert main(files, stdout=out) == 0
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert len(docs) == len(files)
    assert all(doc["apiVersion"] == API_VERSION and "kasmvnc" not in doc["spec"] for doc in docs)


def test_reads_stdin_and_writes_output_file(tmp_path):
    target = tmp_path / "out.yaml"
    source = io.StringIO((LEGACY / "firefox.yaml").read_text())
    assert main(["-", "-o", str(target)], stdin=source) == 0
    assert yaml.safe_load(target.read_text())["metadata"]["name"] == "firefox"


EARLIER = Path(__file__).resolve().parents[1] / "upgrade" / "earlier"


def test_converts_file_by_file_and_reports_every_problem_of_every_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: stream.streamspace.io/v1alpha1\nkind: Template\nmetadata: {name: x}\n"
        "spec: {displayName: X, baseImage: x y, kasmvnc: {port: 70000}}\n"
    )
    out = io.StringIO()
    assert main([str(LEGACY / "firefox.yaml"), str(bad), str(tmp_path / "missing.yaml")], stdout=out) == 1
    converted = list(yaml.safe_load_all(out.getvalue()))
    assert [doc["metadata"]["name"] for doc in converted] == ["firefox"]  # the good file still converts
    err = capsys.readouterr().err
    assert f"{bad}#1 x: NOT converted: spec.baseImage:" in err
    assert f"{bad}#1 x: NOT converted: spec.kasmvnc.port:" in err  # the second problem of the same file too
    assert "missing.yaml: cannot read" in err
    assert "1 of 2 Templates converted; 1 file(s) unreadable" in err


def test_a_folder_of_the_earlier_format_converts_with_every_change_reported(capsys):
    out = io.StringIO()
    assert main([str(EARLIER)], stdout=out) == 1  # broken.yaml holds one document that cannot be converted
    names = [doc["metadata"]["name"] for doc in yaml.safe_load_all(out.getvalue())]
    assert names == ["fine-after-broken", "changedetection-io", "gimp", "vscode", "chrome"]
    err = capsys.readouterr().err
    assert "broken.yaml#1 broken: NOT converted: spec.displayName: required" in err
    assert "broken.yaml: 1 converted, 1 not converted" in err
    assert "gimp.yaml#1 gimp: changed: spec.capabilities: unknown capabilities Graphics" in err
    assert "changedetection.yaml#1 changedetection.io: changed: metadata.name:" in err
    assert "session.yaml#1 user1-gimp: skipped, kind 'Session' is not a Template (use convert-session)" in err


def test_everything_converted_exits_zero():
    out = io.StringIO()
    assert main([str(EARLIER / "gimp.yaml"), str(EARLIER / "vscode.yaml")], stdout=out) == 0
    gimp = next(yaml.safe_load_all(out.getvalue()))
    assert gimp["apiVersion"] == API_VERSION
    assert gimp["spec"]["capabilities"] == ["Network", "Clipboard"]
    assert gimp["spec"]["defaultResources"]["limits"] == {"memory": "2Gi", "cpu": "1000m"}
    assert gimp["spec"]["vnc"]["port"] == 3000


def test_session_converter(tmp_path, capsys):
    odd = tmp_path / "odd.yaml"
    odd.write_text(
        "apiVersion: stream.streamspace.io/v1alpha1\nkind: Session\nmetadata: {name: Bob.Firefox}\n"
        "spec: {user: Bob, template: changedetection.io, state: hibernated, idleTimeout: 1h, colour: red}\n"
        "---\napiVersion: stream.streamspace.io/v1alpha1\nkind: Session\nmetadata: {name: bad}\n"
        "spec: {template: gimp, state: paused, maxSessionDuration: 500ms}\n"
    )
    out = io.StringIO()
    assert main([str(EARLIER / "session.yaml"), str(odd)], stdout=out, command="convert-session") == 1
    sessions = list(yaml.safe_load_all(out.getvalue()))
    assert [s["metadata"]["name"] for s in sessions] == ["user1-gimp", "bob-firefox"]
    first, second = sessions
    assert first["apiVersion"] == "stream.space/v1alpha1"
    assert first["spec"]["resources"]["limits"] == {"memory": "2Gi", "cpu": "1000m"}
    assert first["metadata"]["labels"] == {"stream.space/user": "user1", "stream.space/template": "gimp"}
    assert second["spec"]["template"] == "changedetection-io"  # renamed as the Template converter renames it
    assert second["spec"]["state"] == "hibernated"
    assert second["metadata"]["annotations"]["stream.space/original-name"] == "Bob.Firefox"
    err = capsys.readouterr().err
    assert "odd.yaml#1 Bob.Firefox: changed: spec.colour: unknown field, dropped" in err
    assert "odd.yaml#2 bad: NOT converted: spec.user: required" in err
    assert "odd.yaml#2 bad: NOT converted: spec.state:" in err
    assert "odd.yaml#2 bad: NOT converted: spec.maxSessionDuration:" in err
    assert "1 of 2" not in err and "2 of 3 Sessions converted" in err
