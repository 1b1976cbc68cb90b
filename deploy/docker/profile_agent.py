"""StreamSpace profile agent: restores a session's home from the user's current profile archive, and
saves it back as a new archive. Python standard library only: its own small image
(`docker build --target profile-agent .`), docs/s3.md.

    profile_agent.py restore   (init container) fetch the current profile into HOME_DIR
    profile_agent.py save      save HOME_DIR once, now
    profile_agent.py sidecar   save every PROFILE_SAVE_INTERVAL seconds when the home changed, and on
                               SIGTERM (the pod stopping: hibernate or terminate)
    profile_agent.py warm      (a warm desktop's sidecar) hold no token and wait on PROFILE_CLAIM_PORT
                               for the claim: session-reconcile hands over the session's token, the
                               agent restores the profile, answers how that went, then runs as sidecar

It never holds storage credentials. It asks the platform (PROFILE_API, authenticated by its session's
PROFILE_TOKEN, valid for that one session and user) for short-lived presigned URLs of that user's own
keys, moves the bytes itself, and asks the platform to commit a save: the platform checks the size and
SHA-256 of what arrived (and the quota) before making it current, so an interrupted save never
replaces the last good profile.

Environment: PROFILE_API (the platform's base URL), PROFILE_TOKEN (or PROFILE_TOKEN_FILE),
HOME_DIR (default /config), PROFILE_SAVE_INTERVAL (seconds between periodic saves, 0 or unset: none);
for `warm`: PROFILE_CLAIM_PORT and POD_UID (its pod's uid, from the downward API) instead of a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1024 * 1024
TIMEOUT = 60
# Left in the home when the profile could not be restored: the session starts anyway, with this note.
RESTORE_FAILED_NOTE = ".streamspace-profile-not-restored.txt"


class AgentError(Exception):
    pass


def _settings() -> tuple[str, str, Path]:
    api = os.environ.get("PROFILE_API", "").rstrip("/")
    token = os.environ.get("PROFILE_TOKEN", "")
    token_file = os.environ.get("PROFILE_TOKEN_FILE", "")
    if not token and token_file:
        token = Path(token_file).read_text().strip()
    if not api.startswith(("http://", "https://")) or not token:
        raise AgentError("PROFILE_API (an http(s) URL) and PROFILE_TOKEN (or PROFILE_TOKEN_FILE) are required")
    return api, token, Path(os.environ.get("HOME_DIR", "/config"))


def _http_url(url: object) -> str:
    """Only http(s) URLs are ever opened (never file: or another scheme, whatever an answer says)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AgentError(f"expected an http(s) URL from the platform, got {url!r}")
    return url


def _call(method: str, url: str, token: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 - http(s), checked
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - the platform's URL
            text = answer.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise AgentError(f"{method} {url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise AgentError(f"{method} {url}: {exc}") from None
    return json.loads(text) if text else {}


def restore(api: str, token: str, home: Path) -> str:
    """Extract the current profile into `home`; returns what happened. The stored profile is only read."""
    return restore_current(_call("GET", f"{api}/api/v1/profiles/agent/current", token), home)


def restore_current(answer: dict, home: Path) -> str:
    """Extract the profile the platform's answer names (its presigned URL) into `home`."""
    if not answer.get("downloadUrl"):
        return "no profile yet: the home starts empty"
    url = _http_url(answer["downloadUrl"])
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as archive:
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as download:  # noqa: S310 - presigned URL
                while chunk := download.read(CHUNK):
                    digest.update(chunk)
                    archive.write(chunk)
        except (urllib.error.URLError, OSError) as exc:
            raise AgentError(f"downloading the profile: {exc}") from None
        if answer.get("sha256") and digest.hexdigest() != answer["sha256"]:
            raise AgentError(f"the profile's checksum does not match (expected {answer['sha256']}, "
                             f"got {digest.hexdigest()})")
        archive.seek(0)
        with tarfile.open(fileobj=archive, mode="r:gz") as tar:
            # The data filter refuses absolute paths, .. and links out of the folder, devices, setuid bits.
            tar.extractall(home, filter="data")
    return f"profile {answer.get('id')} restored"


def fingerprint(home: Path) -> str:
    """What the home holds, cheaply (names, sizes, modification times, modes): unchanged means nothing to save."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(home):
        dirs.sort()
        for name in sorted(files) + dirs:
            path = Path(root) / name
            try:
                info = path.lstat()
            except OSError:
                continue  # removed while walking: the next look sees it
            digest.update(f"{path.relative_to(home)}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_mode}\n".encode())
    return digest.hexdigest()


def report_failure(api: str, token: str, operation: str, reason: str) -> None:
    """Tell the platform (the user's page, the alerting metric); best effort: it may be what failed."""
    try:
        _call("POST", f"{api}/api/v1/profiles/agent/failures", token, {"operation": operation, "reason": reason[:500]})
    except AgentError as exc:
        print(f"profile-agent: could not report the failure: {exc}", file=sys.stderr, flush=True)


def _archive(home: Path, target: Path) -> tuple[int, str]:
    with tarfile.open(target, "w:gz") as tar:
        for entry in sorted(home.iterdir()):
            if entry.name == RESTORE_FAILED_NOTE:
                continue
            tar.add(entry, arcname=entry.name)
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return target.stat().st_size, digest.hexdigest()


def save(api: str, token: str, home: Path) -> str:
    """Archive `home`, upload it to a new key, ask the platform to verify and make it current."""
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "profile.tar.gz"
        size, sha256 = _archive(home, archive)
        upload = _call("POST", f"{api}/api/v1/profiles/agent/uploads", token, {"size": size, "sha256": sha256})
        headers = {**upload.get("headers", {}), "Content-Length": str(size)}
        with archive.open("rb") as body:
            url = _http_url(upload.get("uploadUrl"))
            request = urllib.request.Request(url, data=body, method="PUT", headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT):  # noqa: S310 - presigned URL
                    pass
            except urllib.error.HTTPError as exc:
                raise AgentError(f"uploading the profile: HTTP {exc.code}: "
                                 f"{exc.read().decode(errors='replace')[:300]}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise AgentError(f"uploading the profile: {exc}") from None
        done = _call("POST", f"{api}/api/v1/profiles/agent/uploads/{upload['id']}/commit", token,
                     {"size": size, "sha256": sha256})
    return f"profile {done.get('id')} saved ({size} bytes) and current"


def restore_failed(api: str, token: str, home: Path, exc: BaseException) -> str:
    """Start anyway, saying so in the home (the stored profile was only read, never changed) and to the
    platform; returns the words for the user."""
    message = f"Your profile could not be restored ({exc}). This session started with an empty home " \
              "and will not be saved over it: your saved profile is unchanged."
    print(f"profile-agent: {message}", file=sys.stderr, flush=True)
    report_failure(api, token, "restore", str(exc))
    home.mkdir(parents=True, exist_ok=True)
    (home / RESTORE_FAILED_NOTE).write_text(message + "\n")
    return message


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command not in ("restore", "save", "sidecar", "warm"):
        print(__doc__, file=sys.stderr)
        return 2
    if command == "warm":
        try:
            api, home, port, pod_uid = _warm_settings()
        except (AgentError, ValueError) as exc:
            print(f"profile-agent: {exc}", file=sys.stderr)
            return 2
        return warm(api, home, port, pod_uid, _interval())
    try:
        api, token, home = _settings()
    except (AgentError, OSError) as exc:
        print(f"profile-agent: {exc}", file=sys.stderr)
        return 2
    if command == "restore":
        try:
            print(f"profile-agent: {restore(api, token, home)}", flush=True)
        except (AgentError, tarfile.TarError, OSError) as exc:
            restore_failed(api, token, home, exc)
        return 0
    if command == "sidecar":
        return sidecar(api, token, home, _interval())
    return 0 if _save_once(api, token, home) else 1


def _interval() -> int:
    raw = os.environ.get("PROFILE_SAVE_INTERVAL", "").strip()
    return int(raw) if raw.isdigit() else 0


def _save_once(api: str, token: str, home: Path) -> bool:
    if (home / RESTORE_FAILED_NOTE).exists():
        # The restore failed: saving this (empty or partial) home would bury the good profile under it.
        print("profile-agent: not saving: this session's home was not restored from the profile", file=sys.stderr,
              flush=True)
        return False
    try:
        print(f"profile-agent: {save(api, token, home)}", flush=True)
    except (AgentError, OSError, tarfile.TarError) as exc:
        print(f"profile-agent: save failed, the previous profile stays current: {exc}", file=sys.stderr, flush=True)
        report_failure(api, token, "save", str(exc))
        return False
    return True


def sidecar(api: str, token: str, home: Path, interval: int) -> int:
    """Run beside the desktop: a periodic save when the home changed (a node that dies loses at most one
    interval), and the last save on SIGTERM (with native sidecars, after the desktop has stopped)."""
    stopping = _stop_on_signals()
    saved = fingerprint(home) if home.exists() else ""  # as restored: nothing new to save yet
    print("profile-agent: waiting for the session to stop", flush=True)
    return _save_until_stopped(api, token, home, interval, stopping, saved)


def _stop_on_signals(*also: threading.Event) -> threading.Event:
    """An event set by SIGTERM or SIGINT (as are `also`, to wake whoever waits on them)."""
    stopping = threading.Event()

    def stop(*_: object) -> None:
        for event in (stopping, *also):
            event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return stopping


def _save_until_stopped(api: str, token: str, home: Path, interval: int, stopping: threading.Event,
                        saved: str) -> int:
    """Save when the home changed from `saved` (its fingerprint as restored), every `interval` seconds,
    and once more when stopping."""
    while not stopping.wait(interval or None):
        now = fingerprint(home)
        if now != saved and _save_once(api, token, home):
            saved = now
    if home.exists() and fingerprint(home) == saved and saved:
        print("profile-agent: the home is unchanged since the last save: nothing to save", flush=True)
        return 0
    return 0 if _save_once(api, token, home) else 1


# -- a warm desktop's agent ---------------------------------------------------------------------------

CLAIM_PATH = "/claim"
CLAIM_WAIT_LIMIT = 60  # seconds a claim's answer may wait for the restore (the caller says how long)


def _warm_settings() -> tuple[str, Path, int, str]:
    api = os.environ.get("PROFILE_API", "").rstrip("/")
    port = os.environ.get("PROFILE_CLAIM_PORT", "").strip()
    pod_uid = os.environ.get("POD_UID", "").strip()
    if not api.startswith(("http://", "https://")) or not port.isdigit() or not pod_uid:
        raise AgentError("PROFILE_API (an http(s) URL), PROFILE_CLAIM_PORT and POD_UID are required")
    return api, Path(os.environ.get("HOME_DIR", "/config")), int(port), pod_uid


class Claim:
    """What the warm agent was handed: nothing until a claim, then its token and how the restore went."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token: str | None = None
        self.state = "waiting"  # waiting | restoring | restored | failed
        self.message = ""
        self.restored = ""  # the home's fingerprint as restored
        self.done = threading.Event()  # the restore finished (either way)
        self.taken = threading.Event()
        self.wake = threading.Event()  # a claim was taken or the agent is asked to stop


def warm(api: str, home: Path, port: int, pod_uid: str, interval: int) -> int:
    """A warm desktop's agent: it holds no credential and has nobody's files until the claim hands it
    its session's token (POST /claim {token, pod, wait}, from session-reconcile only: the pool's and the
    session's NetworkPolicies let nothing else in). The pod's uid must be this pod's (a reused address
    never receives a token meant for another pod). The token is tried on the platform first: one that
    is refused is answered 403 and the agent keeps waiting. Then the profile is restored into the home
    the desktop already runs on, and the agent runs as the sidecar (periodic saves, the last on SIGTERM).
    Stopped before any claim, it exits with nothing to save."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    claim = Claim()
    stopping = _stop_on_signals(claim.wake)

    def restore_in_background(answer: dict, token: str) -> None:
        try:
            message, state = restore_current(answer, home), "restored"
            print(f"profile-agent: {message}", flush=True)
        except (AgentError, tarfile.TarError, OSError) as exc:
            message, state = restore_failed(api, token, home, exc), "failed"
        restored = fingerprint(home) if home.exists() else ""  # as restored: nothing new to save yet
        with claim.lock:
            claim.state, claim.message, claim.restored = state, message, restored
        claim.done.set()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:  # the agent's own lines only
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._answer(200 if self.path == "/healthz" else 404, {"state": claim.state})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if self.path != CLAIM_PATH:
                self._answer(404, {"error": "not found"})
                return
            try:
                body = json.loads(self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 16384)))
                token, pod, wait = str(body["token"]), str(body["pod"]), float(body.get("wait", 0))
            except (ValueError, KeyError, TypeError):
                self._answer(400, {"error": "expected {token, pod, wait}"})
                return
            if pod != pod_uid:
                self._answer(409, {"error": "not this pod"})
                return
            with claim.lock:
                held = claim.token
                if held is None:
                    try:  # the platform says whether the token is worth anything (and where the profile is)
                        answer = _call("GET", f"{api}/api/v1/profiles/agent/current", token)
                    except AgentError as exc:
                        self._answer(403, {"error": "token refused", "reason": str(exc)})
                        return
                    claim.token, claim.state = token, "restoring"
                    threading.Thread(target=restore_in_background, args=(answer, token), daemon=True).start()
                    claim.taken.set()
                    claim.wake.set()
                elif not hmac.compare_digest(held, token):
                    self._answer(409, {"error": "claimed by another session"})
                    return
            claim.done.wait(min(max(wait, 0.0), CLAIM_WAIT_LIMIT))
            with claim.lock:
                self._answer(200 if claim.done.is_set() else 202, {"state": claim.state, "message": claim.message})

    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="claim", daemon=True).start()
    print(f"profile-agent: warm, waiting for a claim on port {port}", flush=True)
    claim.wake.wait()
    if not claim.taken.is_set():
        server.shutdown()
        print("profile-agent: stopped before any claim: nothing of anyone to save", flush=True)
        return 0
    claim.done.wait()
    if claim.token is None:
        raise AgentError("invariant broken: claimed without a token")
    return _save_until_stopped(api, claim.token, home, interval, stopping, claim.restored)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
