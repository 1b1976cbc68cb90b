"""The real OpenID Provider of the SSO tests: the certified `oidc-provider` npm package, run with
Node and configured by provider/provider.mjs (clients, keys, claims). `make test` installs it with
`npm ci` from provider/package-lock.json.

`OpenIDProvider` starts it on a free port, holds its signing keys (the tests craft forged tokens
with them and rotate them), its accounts (claims a test can change between logins), and drives a
login through the provider's own HTML interaction pages with plain HTTP.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import requests

from streamspace.local.server import unused_port
from tests.sim.sim_helpers import ProcessOutput

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
CLIENT_ID = "streamspace"
CLIENT_SECRET = "streamspace-test-client-secret-0123456789"



def rsa_jwk(kid: str) -> tuple[dict[str, Any], Any]:
    """A new RSA signing key: (private JWK for the provider, the key object for forging tokens)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk, key


class OpenIDProvider:
    def __init__(self, workdir: Path, redirect_uris: list[str], *, extra_clients: list[dict[str, Any]] = (),
                 post_logout_redirect_uris: list[str] = ("http://127.0.0.1/logged-out",)):
        self.workdir = workdir
        self.port = unused_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.keys_file = workdir / "keys.json"
        self.accounts_file = workdir / "accounts.json"
        self.accounts: dict[str, dict[str, Any]] = {}
        self.signing_keys: dict[str, Any] = {}
        self.redirect_uris = redirect_uris
        self.clients = [{
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "grant_types": ["authorization_code"], "response_types": ["code"],
        }, *extra_clients]
        self.process: subprocess.Popen | None = None
        self.claims_in_userinfo_only = False
        self.rotate_keys(signal=False)
        self.write_accounts()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> OpenIDProvider:
        config = {"issuer": self.issuer, "port": self.port, "clients": self.clients,
                  "keysFile": str(self.keys_file), "accountsFile": str(self.accounts_file),
                  "claimsInUserinfoOnly": self.claims_in_userinfo_only}
        (self.workdir / "config.json").write_text(json.dumps(config))
        node_modules = PROVIDER_DIR / "node_modules" / "oidc-provider"
        assert node_modules.is_dir(), "run `make test` (npm ci in tests/sso/provider) to install oidc-provider"
        self.process = subprocess.Popen(["node", str(PROVIDER_DIR / "provider.mjs"), str(self.workdir / "config.json")],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        self.output = ProcessOutput(self.process.stdout)
        self.output.wait_for_line(f"listening {self.issuer}")  # printed once the server is bound
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    # -- keys and accounts --------------------------------------------------------------------
    def rotate_keys(self, *, signal: bool = True) -> str:
        """Replace every signing key by a new one (kid returned); the provider reloads them."""
        kid = "k-" + uuid.uuid4().hex[:8]
        jwk, key = rsa_jwk(kid)
        self.signing_keys = {kid: key}
        self.keys_file.write_text(json.dumps({"keys": [jwk]}))
        if signal and self.process is not None:
            import signal as signals

            mark = len(self.output.lines)
            self.process.send_signal(signals.SIGHUP)
            self.output.wait_for_line("reloaded", since=mark)  # printed once the new keys are read
            assert kid in self.published_kids()
        return kid

    def published_kids(self) -> set[str]:
        jwks_uri = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=5).json()["jwks_uri"]
        return {k.get("kid") for k in requests.get(jwks_uri, timeout=5).json()["keys"]}

    @property
    def kid(self) -> str:
        return next(iter(self.signing_keys))

    def set_account(self, login: str, **claims: Any) -> None:
        self.accounts[login] = claims
        self.write_accounts()

    def write_accounts(self) -> None:
        self.accounts_file.write_text(json.dumps(self.accounts))

    # -- a user at the provider ---------------------------------------------------------------
    def authorize(self, authorization_url: str, login: str, browser: requests.Session | None = None) -> str:
        """Sign in as `login` on the provider's own pages, starting from an authorization URL;
        returns the URL the provider finally redirects the browser to (our callback, with code and
        state, or with an error)."""
        browser = browser or requests.Session()
        url = authorization_url
        for _ in range(12):
            answer = browser.get(url, allow_redirects=False, timeout=10) if url else None
            assert answer is not None
            while answer.status_code in (302, 303):
                target = urljoin(url, answer.headers["Location"])
                if not target.startswith(self.issuer):
                    return target
                url = target
                answer = browser.get(url, allow_redirects=False, timeout=10)
            form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', answer.text)
            assert answer.status_code == 200 and form, f"provider page {answer.status_code}: {answer.text[:300]}"
            action = urljoin(url, unescape(form.group(1)))
            prompt = re.search(r'name="prompt" value="(\w+)"', answer.text)
            fields = {"prompt": prompt.group(1) if prompt else "login"}
            if fields["prompt"] == "login":
                fields.update({"login": login, "password": "any"})
            posted = browser.post(action, data=fields, allow_redirects=False, timeout=10)
            assert posted.status_code in (302, 303), posted.text[:300]
            url = urljoin(action, posted.headers["Location"])
            if not url.startswith(self.issuer):
                return url
        raise AssertionError("the provider's interaction did not finish")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
