"""Authentication, RBAC authorization and owner-reference admission of the simulated API server.

A test and demo harness, modelled on the Kubernetes sources it names, so that a Role missing a verb
fails a test here instead of a request in production:

- Authentication: bearer tokens issued per ServiceAccount (`issue_token`, what the TokenRequest API
  and a pod's projected token give a real workload) identify `system:serviceaccount:<ns>:<name>` with
  the groups `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`. An
  unknown token answers 401. A request with no token is the harness's administrator (group
  `system:masters`, like the client certificate of kind's admin kubeconfig): tests and kubectl
  arrange the world with it.
- Authorization (plugin/pkg/auth/authorizer/rbac, rbac/v1 helpers): the Roles, ClusterRoles,
  RoleBindings and ClusterRoleBindings stored in the simulated cluster. A RoleBinding grants its
  role's rules in its own namespace only, a ClusterRoleBinding everywhere. Rules match on verb, API
  group, resource (`*`, `pods/log`, `*/status`) and resourceNames. Discovery and other non-resource
  reads are open to every authenticated user (system:discovery, system:public-info-viewer). The
  request's verb follows the API server's RequestInfo: get, list, watch, create, update, patch,
  delete, deletecollection; subresources are authorized as `<resource>/<subresource>`.
- Server-side apply of an object that does not exist is also authorized as `create` (the API
  server's patch handler authorizes the create it turns into).
- OwnerReferencesPermissionEnforcement (plugin/pkg/admission/gc/gc_admission.go): changing an
  object's ownerReferences needs `delete` on that object; adding a `blockOwnerDeletion: true`
  reference needs `update` on the owner's `finalizers` subresource.

Aggregated ClusterRoles and the bootstrap roles of a real cluster are not simulated: a
ServiceAccount has exactly what the project's own manifests grant it.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from streamspace.records import record

from .errors import ApiError

if TYPE_CHECKING:
    from .api import Api
    from .resources import Registry, ResourceType
    from .store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = (RBAC_GROUP, "roles")
CLUSTER_ROLES = (RBAC_GROUP, "clusterroles")
ROLE_BINDINGS = (RBAC_GROUP, "rolebindings")
CLUSTER_ROLE_BINDINGS = (RBAC_GROUP, "clusterrolebindings")
ADMIN = "system:admin"
APPLY_TYPES = ("application/apply-patch+yaml", "application/apply-patch+cbor")
# The kinds `load_manifests` takes from a rendered tree (everything else is ignored).
RBAC_KINDS = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


@record
class User:
    name: str
    groups: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


ADMIN_USER = User(ADMIN, ("system:masters", "system:authenticated"))


@record
class Attributes:
    """One authorization question, as the API server's authorizer.AttributesRecord asks it."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str

    @property
    def combined(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def service_account_user(namespace: str, name: str) -> User:
    return User(f"system:serviceaccount:{namespace}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


# -- rule matching (pkg/apis/rbac/v1/evaluation_helpers.go) -----------------------------------------

def _verb_matches(rule: dict[str, Any], verb: str) -> bool:
    return any(v in ("*", verb) for v in rule.get("verbs") or ())


def _group_matches(rule: dict[str, Any], group: str) -> bool:
    return any(g in ("*", group) for g in rule.get("apiGroups") or ())


def _resource_matches(rule: dict[str, Any], attrs: Attributes) -> bool:
    for resource in rule.get("resources") or ():
        if resource in ("*", attrs.combined):
            return True
        # "*/status" grants the status subresource of every resource (not the resources themselves).
        if attrs.subresource and resource == f"*/{attrs.subresource}":
            return True
    return False


def _name_matches(rule: dict[str, Any], name: str) -> bool:
    names = rule.get("resourceNames") or ()
    return not names or name in names


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    return (_verb_matches(rule, attrs.verb) and _group_matches(rule, attrs.group)
            and _resource_matches(rule, attrs) and _name_matches(rule, attrs.name))


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.name)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


# -- the authorizer ---------------------------------------------------------------------------------

class Rbac:
    """Tokens, the RBAC authorizer over the stored roles, and the request hook of the server."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._lock = threading.Lock()
        self._tokens: dict[str, User] = {}

    # ------------------------------------------------------------ authentication

    def issue_token(self, namespace: str, service_account: str) -> str:
        """A bearer token for the ServiceAccount (it need not exist yet, like a token for a deleted one)."""
        token = "sim-sa-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = service_account_user(namespace, service_account)
        return token

    def authenticate(self, authorization: str | None, certificate: dict[str, Any] | None = None) -> User:
        """The request's user: a verified client certificate's subject first (the x509 authenticator
        precedes the token ones in the API server's union: common name the user, organizations its
        groups), else the bearer token; a request with neither is the harness administrator."""
        if certificate is not None:
            subject = [attribute for rdn in certificate.get("subject") or () for attribute in rdn]
            names = [value for key, value in subject if key == "commonName"]
            if names:
                groups = tuple(value for key, value in subject if key == "organizationName")
                return User(names[0], (*groups, "system:authenticated"))
        if not authorization:
            return ADMIN_USER
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            user = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized", {})
        return user

    # ------------------------------------------------------------ authorization

    def _rules_for(self, user: User, namespace: str) -> Iterable[dict[str, Any]]:
        with self.store.txn():
            cluster_bindings = self.store.items(CLUSTER_ROLE_BINDINGS)
            bindings = self.store.items(ROLE_BINDINGS, namespace) if namespace else []
            refs: list[tuple[str, str]] = []
            for binding in cluster_bindings:
                if any(_subject_matches(s, user, "") for s in binding.get("subjects") or ()):
                    refs.append(("ClusterRole", (binding.get("roleRef") or {}).get("name", "")))
            for binding in bindings:
                if any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or ()):
                    ref = binding.get("roleRef") or {}
                    refs.append((str(ref.get("kind", "")), str(ref.get("name", ""))))
            rules: list[dict[str, Any]] = []
            for kind, name in refs:
                role = (self.store.get(CLUSTER_ROLES, "", name) if kind == "ClusterRole"
                        else self.store.get(ROLES, namespace, name) if kind == "Role" else None)
                rules.extend((role or {}).get("rules") or ())
        return rules

    def allowed(self, user: User, attrs: Attributes) -> bool:
        if user.is_admin:
            return True
        return any(rule_allows(rule, attrs) for rule in self._rules_for(user, attrs.namespace))

    def authorize(self, user: User, attrs: Attributes, reason: str = "", request: Attributes | None = None) -> None:
        """Raise 403 unless `attrs` is allowed; `request` names the refused request when it differs from
        the question asked (admission asks about the owner of the object being written)."""
        if self.allowed(user, attrs):
            return
        target = request or attrs
        group = f' in API group "{attrs.group}"'
        scope = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
        subject = f'{target.resource}.{target.group}' if target.group else target.resource
        subject += f' "{target.name}"' if target.name else ""
        cause = f'User "{user.name}" cannot {attrs.verb} resource "{attrs.combined}"{group}{scope}'
        message = f"{subject} is forbidden: {reason + ': ' if reason else ''}{cause}"
        details: dict[str, Any] = {"kind": target.resource}
        if target.name:
            details["name"] = target.name
        if target.group:
            details["group"] = target.group
        raise ApiError(403, "Forbidden", message, details)

    # ------------------------------------------------------------ the server's hook

    def check_request(self, user: User, method: str, rt: ResourceType, namespace: str | None, name: str | None,
                      subresource: str | None, watch: bool, content_type: str,
                      body: Callable[[], Any]) -> None:
        """Authorize one resource request, then run the owner-reference admission on writes."""
        if user.is_admin:
            return
        verb = _verb(method, name, watch)
        ns = namespace or ""
        attrs = Attributes(verb, rt.group, rt.plural, subresource or "", ns, name or "")
        self.authorize(user, attrs)
        if method not in ("POST", "PUT", "PATCH") or subresource is not None:
            return
        old = self.store.get(rt.store_key, ns if rt.namespaced else "", name) if name else None
        if method == "PATCH" and content_type in APPLY_TYPES and old is None:
            self.authorize(user, Attributes("create", rt.group, rt.plural, "", ns, name or ""))
        if method == "PATCH" and content_type not in APPLY_TYPES + ("application/merge-patch+json",):
            return  # json-patch and strategic merge: the new list is only known after patching
        new = body()
        if not isinstance(new, dict):
            return
        new_refs = (new.get("metadata") or {}).get("ownerReferences")
        if new_refs is None and method == "PATCH":
            return  # a patch that leaves metadata.ownerReferences alone cannot change them
        self._admit_owner_references(user, rt, ns, name or (new.get("metadata") or {}).get("name", ""),
                                     new_refs or [], (old or {}).get("metadata", {}).get("ownerReferences"),
                                     creating=old is None)

    def _admit_owner_references(self, user: User, rt: ResourceType, namespace: str, name: str,
                                new_refs: list[dict[str, Any]], old_refs: list[dict[str, Any]] | None,
                                creating: bool) -> None:
        changing = bool(new_refs) if creating else (new_refs != (old_refs or []))
        if not changing:
            return
        written = Attributes("create" if creating else "update", rt.group, rt.plural, "", namespace, name)
        self.authorize(user, Attributes("delete", rt.group, rt.plural, "", namespace, name),
                       "cannot set an ownerRef on a resource you can't delete", written)
        was_blocking = {r.get("uid") for r in old_refs or () if r.get("blockOwnerDeletion") is True}
        for ref in new_refs:
            if ref.get("blockOwnerDeletion") is not True or ref.get("uid") in was_blocking:
                continue
            owner = self._owner_type(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
            if owner is None:
                raise ApiError(403, "Forbidden", f"cannot set blockOwnerDeletion in this case because cannot find "
                               f"RESTMapping for APIVersion {ref.get('apiVersion')} Kind {ref.get('kind')}", {})
            self.authorize(user, Attributes("update", owner.group, owner.plural, "finalizers", namespace,
                                            str(ref.get("name", ""))),
                           "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set "
                           "finalizers on", written)

    def _owner_type(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.registry.all():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    # ------------------------------------------------------------ loading the project's manifests

    def load_manifests(self, api: Api, docs: Iterable[dict[str, Any]], namespace: str) -> list[str]:
        """Create the ServiceAccounts and RBAC objects among rendered manifests; returns 'Kind/name' of each."""
        loaded = []
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") not in RBAC_KINDS:
                continue
            rt = self.registry.get(*_group_version(doc), _PLURALS[doc["kind"]])
            if rt is None:
                continue
            ns = (doc.get("metadata") or {}).get("namespace") or namespace if rt.namespaced else ""
            if ns:
                api.ensure_namespace(ns)
            _create_or_replace(api, rt, ns, doc)
            loaded.append(f"{doc['kind']}/{doc['metadata']['name']}")
        return loaded


def _create_or_replace(api: Api, rt: ResourceType, ns: str, doc: dict[str, Any]) -> None:
    """Like `kubectl apply` of the manifests at start-up: a cluster restored from its state file
    already has them (an unchanged object is a no-op)."""
    with api.store.txn():
        existing = api.store.get(rt.store_key, ns, str(doc["metadata"]["name"]))
        if existing is None:
            api.create(rt, ns, doc)
            return
        body = copy.deepcopy(doc)
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        api.replace(rt, ns, body["metadata"]["name"], body)


_PLURALS = {"ServiceAccount": "serviceaccounts", "Role": "roles", "ClusterRole": "clusterroles",
            "RoleBinding": "rolebindings", "ClusterRoleBinding": "clusterrolebindings"}


def _group_version(doc: dict[str, Any]) -> tuple[str, str]:
    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    return group, version


def _verb(method: str, name: str | None, watch: bool) -> str:
    if method == "GET":
        return "watch" if watch else ("get" if name else "list")
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
