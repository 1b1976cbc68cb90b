"""A shallow fetch of one branch with the git CLI, isolated per repository.

`git clone --depth 1 --branch <b> --single-branch --no-tags` into a temporary folder, with:
- an environment built from scratch: HOME is the temporary folder, no system or global config,
  no terminal prompts, C locale (error messages are matched below), proxies and CA settings passed on;
- configuration through GIT_CONFIG_COUNT (never the shared files, never the command line, which
  other processes can read): only the https and ssh transports (file only when file URLs are
  allowed), no redirects (a redirect could lead to an address that was never checked), the https
  connection pinned to the addresses the URL check resolved (`http.curloptResolve`), symlinks
  checked out as plain files, credentials as an `http.extraHeader`;
- ssh through GIT_SSH_COMMAND: a key file in the temporary folder, strict host key checking
  against the configured known_hosts (CATALOG_SSH_KNOWN_HOSTS, default <data dir>/known_hosts),
  batch mode, the connection pinned to the checked address (HostKeyAlias keeps the host key check
  on the name);
- a timeout, after which the whole process group is killed.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

from streamspace.catalog.urls import RepositoryUrl
from streamspace.config import environment
from streamspace.domain.errors import UpstreamRefused, ValidationError
from streamspace.records import record

GIT_TIMEOUT_SECONDS = 120
TOKEN_USER = "x-access-token"
_PASSED_ENV = ("PATH", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
               "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_EXEC_PATH")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9._/+-]{1,255}$")


class FetchError(UpstreamRefused):
    """The repository could not be fetched; the message says why in words an admin can act on.
    Retryable when the host could not be reached in time (a later sync may get through); a refusal
    (credentials, branch, host key, transport) needs an admin's change first."""

    default_error = "repository fetch failed"


# The messages of `_explain` a later attempt can get past: the network or the server, not the settings.
_UNREACHED = ("took longer than", "cannot be resolved", "cannot connect to")


def _fetch_failed(message: str) -> FetchError:
    return FetchError(message, retryable=any(part in message for part in _UNREACHED))


def check_branch(branch: object) -> str:
    """A branch name git accepts and that cannot be mistaken for an option."""
    if branch is None or branch == "":
        return "main"
    if not isinstance(branch, str) or not _BRANCH_RE.fullmatch(branch) or branch.startswith(("-", "/", ".")) \
            or branch.endswith(("/", ".", ".lock")) or ".." in branch or "//" in branch or "/." in branch:
        raise ValidationError("branch", f"expected a branch name such as main or release/1.0, got {branch!r}")
    return branch


def known_hosts_path() -> Path:
    cfg = environment()
    return cfg.catalog_ssh_known_hosts or cfg.data_dir / "known_hosts"


@record
class FetchResult:
    checkout: Path
    commit: str


def _git_config(url: RepositoryUrl, addresses: list[str], auth_type: str, secret: str | None,
                allow_file: bool) -> list[tuple[str, str]]:
    config = [
        ("protocol.allow", "never"),
        ("protocol.https.allow", "always"),
        ("protocol.ssh.allow", "always"),
        ("protocol.file.allow", "always" if allow_file and url.scheme == "file" else "never"),
        ("http.followRedirects", "false"),
        ("core.symlinks", "false"),
        ("core.hooksPath", "/dev/null"),
        ("advice.detachedHead", "false"),
        ("init.defaultBranch", "main"),
        ("credential.helper", ""),
    ]
    if url.scheme == "https" and addresses and url.host:
        pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
        config.append(("http.curloptResolve", f"{url.host}:{url.effective_port}:{pinned}"))
    if auth_type in ("token", "basic") and secret:
        userpass = f"{TOKEN_USER}:{secret}" if auth_type == "token" else secret
        config.append(("http.extraHeader", "Authorization: Basic " + base64.b64encode(userpass.encode()).decode()))
    return config


def _ssh_command(url: RepositoryUrl, addresses: list[str], key_file: Path | None, known_hosts: Path) -> str:
    parts = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=15",
             "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no"]
    if key_file is not None:
        parts += ["-i", str(key_file)]
    if addresses and url.host:
        parts += ["-o", f"HostKeyAlias={url.host}", "-o", f"HostName={addresses[0]}"]
    return " ".join(shlex.quote(p) for p in parts)


def _explain(stderr: str, branch: str, secret: str | None, timed_out: bool, timeout: float) -> str:
    if timed_out:
        return f"fetching the repository took longer than {int(timeout)}s"
    text = stderr
    if secret:
        text = text.replace(secret, "***")
    lowered = text.lower()
    checks = [
        (("remote branch", "not found"), f"branch {branch!r} does not exist in the repository"),
        (("could not find remote branch",), f"branch {branch!r} does not exist in the repository"),
        (("host key verification failed",), "the ssh host key is not in the configured known_hosts (or it changed)"),
        (("authentication failed",), "authentication failed: check authType and authSecret"),
        (("could not read username",), "the repository needs credentials: set authType and authSecret"),
        (("could not read password",), "authentication failed: check authType and authSecret"),
        (("permission denied (publickey",), "authentication failed: the ssh key was refused"),
        (("access denied",), "authentication failed: check authType and authSecret"),
        (("could not resolve host",), "the repository host cannot be resolved"),
        (("could not resolve hostname",), "the repository host cannot be resolved"),
        (("connection refused",), "cannot connect to the repository host (connection refused)"),
        (("failed to connect",), "cannot connect to the repository host"),
        (("connection timed out",), "cannot connect to the repository host (timed out)"),
        (("does not appear to be a git repository",), "repository not found"),
        (("repository", "not found"), "repository not found (or not readable with these credentials)"),
        (("http 404",), "repository not found"),
        (("error: 403",), "access to the repository was refused (HTTP 403): check the credentials"),
        (("redirect",), "the server answered with a redirect; use the repository's final URL"),
        (("transport", "not allowed"), "this URL's transport is not allowed"),
    ]
    for needles, message in checks:
        if all(n in lowered for n in needles):
            return message
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return f"git clone failed: {last[:300]}"


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str, bool]:
    process = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = process.communicate(timeout=timeout)
        return process.returncode, err.decode(errors="replace"), False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, err = process.communicate()
        return -9, err.decode(errors="replace"), True


def fetch(url: RepositoryUrl, branch: str, workdir: Path, *, addresses: list[str], auth_type: str = "none",
          secret: str | None = None, allow_file: bool = False, timeout: float = GIT_TIMEOUT_SECONDS) -> FetchResult:
    """Clone `branch` of `url` into `workdir`/checkout (workdir: a fresh private temporary folder)."""
    home = workdir / "home"
    home.mkdir(mode=0o700)
    checkout = workdir / "checkout"
    env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "LC_ALL": "C",
        "LANG": "C",
    })
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    config = _git_config(url, addresses, auth_type, secret, allow_file)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    if url.scheme == "ssh":
        known_hosts = known_hosts_path()
        if not known_hosts.is_file():
            raise FetchError(f"ssh repositories need known host keys: put them in {known_hosts} "
                             "(or set CATALOG_SSH_KNOWN_HOSTS), e.g. with ssh-keyscan")
        key_file = None
        if auth_type == "ssh" and secret:
            key_file = home / "id_key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secret.strip() + "\n")
        env["GIT_SSH_COMMAND"] = _ssh_command(url, addresses, key_file, known_hosts)
        env["GIT_SSH_VARIANT"] = "ssh"
    cmd = ["git", "clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags", "--branch", branch,
           "--", url.raw, str(checkout)]
    code, stderr, timed_out = _run(cmd, env, workdir, timeout)
    if code != 0:
        raise _fetch_failed(_explain(stderr, branch, secret, timed_out, timeout))
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], env=env, capture_output=True,
                          timeout=30, check=False)
    commit = head.stdout.decode(errors="replace").strip()
    if head.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", commit):
        raise FetchError("the fetched branch has no commit")
    return FetchResult(checkout, commit)
