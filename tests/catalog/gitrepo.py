"""Real git repositories for catalog tests: `git init`, files, commits, served as file:// URLs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "LC_ALL": "C",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com",
                           "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, env=_ENV, capture_output=True, check=True)
    return done.stdout.decode().strip()


class GitRepo:
    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", branch)

    @property
    def url(self) -> str:
        return "file://" + str(self.path)

    def write(self, relative: str, text: str | bytes) -> GitRepo:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        return self

    def remove(self, relative: str) -> GitRepo:
        git(self.path, "rm", "-q", relative)
        return self

    def commit(self, message: str = "update") -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def rename_branch(self, new: str) -> None:
        git(self.path, "branch", "-m", new)

    def move_away(self) -> Path:
        gone = self.path.with_name(self.path.name + "-gone")
        shutil.move(self.path, gone)
        return gone

    def move_back(self, gone: Path) -> None:
        shutil.move(gone, self.path)


LEGACY_FIREFOX = """\
# legacy format: old API group, flat resources, kasmvnc
apiVersion: stream.streamspace.io/v1alpha1
kind: Template
metadata:
  name: firefox
  namespace: workspaces
spec:
  displayName: Firefox
  description: Firefox web browser
  category: Web Browsers
  icon: https://example.com/firefox.png
  baseImage: lscr.io/linuxserver/firefox:latest
  defaultResources:
    memory: 2Gi
    cpu: 1000m
  ports:
  - name: vnc
    containerPort: 3000
  kasmvnc:
    enabled: true
    port: 3000
  tags: [firefox, browser]
"""

VSCODE = """\
apiVersion: stream.space/v1alpha1
kind: Template
metadata:
  name: vscode
spec:
  displayName: VS Code
  description: Visual Studio Code in the browser
  category: Development
  tags: [editor, ide]
  baseImage: lscr.io/linuxserver/code-server:latest
  appType: webapp
  defaultResources:
    requests: {memory: 1Gi, cpu: 500m}
    limits: {memory: 4Gi, cpu: "2"}
  ports:
    - {name: http, containerPort: 8443}
  webapp: {enabled: true, port: 8443, path: /}
"""

MULTI = """\
apiVersion: stream.space/v1alpha1
kind: Template
metadata:
  name: gimp
spec:
  displayName: GIMP
  description: Image editor
  category: Graphics
  tags: [graphics]
  baseImage: lscr.io/linuxserver/gimp:latest
  vnc: {enabled: true, port: 3000}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-a-template
data: {a: b}
---
apiVersion: stream.space/v1alpha1
kind: Template
metadata:
  name: broken
spec:
  displayName: Broken (no image)
  vnc: {enabled: true}
"""

NO_PORT = """\
apiVersion: stream.space/v1alpha1
kind: Template
metadata: {name: no-port}
spec:
  displayName: No port
  baseImage: example.com/app:1
  vnc: {enabled: false}
"""

OPENSHIFT = """\
apiVersion: template.openshift.io/v1
kind: Template
metadata: {name: someone-elses}
objects: []
"""


def alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    body = "\n".join("  " + line for line in lines)
    return f"apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata: {{name: bomb}}\nspec:\n{body}\n"


def template(name: str, display: str | None = None, *, category: str = "Test", tags: tuple[str, ...] = ("t",),
             description: str = "") -> str:
    return (f"apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata: {{name: {name}}}\nspec:\n"
            f"  displayName: {display or name.title()}\n  description: '{description}'\n  category: {category}\n"
            f"  tags: [{', '.join(tags)}]\n  baseImage: example.com/{name}:1\n  vnc: {{enabled: true, port: 3000}}\n")


def populate_standard(repo: GitRepo) -> str:
    """Three valid templates (both apiVersions, both resource shapes) and four invalid documents."""
    repo.write("templates/firefox.yaml", LEGACY_FIREFOX)
    repo.write("templates/vscode.yml", VSCODE)
    repo.write("templates/multi.yaml", MULTI)
    repo.write("invalid/syntax.yaml", "apiVersion: stream.space/v1alpha1\nkind: Template\nspec: [unclosed\n")
    repo.write("invalid/no-port.yaml", NO_PORT)
    repo.write("invalid/bomb.yaml", alias_bomb())
    repo.write("other/openshift.yaml", OPENSHIFT)
    repo.write(".github/workflows/ci.yml", "on: push\njobs: {}\n")
    repo.write("README.md", "# templates\n")
    return repo.commit("templates")
