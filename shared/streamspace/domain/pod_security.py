"""The Pod Security Standards (baseline and restricted) as the pod-security-admission controller checks
them (k8s.io/pod-security-admission/policy, check_*.go, latest version of each check).

Pure functions over a pod spec as a dict; `violations(spec, "baseline")` lists each failed check the
way the admission message names it ("privileged", "host namespaces", ...). Used to prove that the
session pods StreamSpace creates pass the level their namespace enforces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

LEVELS = ("privileged", "baseline", "restricted")
# check_capabilities_baseline.go: capabilities_allowed_1_0
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
# check_sysctls.go (1.29+)
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"})
# check_seLinuxOptions.go
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# check_restrictedVolumes.go
RESTRICTED_VOLUME_TYPES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                     "persistentVolumeClaim", "projected", "secret"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


def _context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return container.get("securityContext") or {}


def baseline_violations(spec: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> list[str]:
    pod = spec.get("securityContext") or {}
    found: list[str] = []
    if pod.get("windowsOptions", {}).get("hostProcess") or any(
            _context(c).get("windowsOptions", {}).get("hostProcess") for c in _containers(spec)):
        found.append("hostProcess")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        found.append("host namespaces")
    if any(_context(c).get("privileged") for c in _containers(spec)):
        found.append("privileged")
    if any(set((_context(c).get("capabilities") or {}).get("add") or ()) - BASELINE_CAPABILITIES
           for c in _containers(spec)):
        found.append("non-default capabilities")
    if any("hostPath" in v for v in spec.get("volumes") or ()):
        found.append("hostPath volumes")
    if any(p.get("hostPort") for c in _containers(spec) for p in c.get("ports") or ()):
        found.append("hostPort")
    apparmor = [pod.get("appArmorProfile")] + [_context(c).get("appArmorProfile") for c in _containers(spec)]
    annotations = (metadata or {}).get("annotations") or {}
    if any(p and p.get("type") not in ("RuntimeDefault", "Localhost") for p in apparmor) or any(
            k.startswith(APPARMOR_ANNOTATION) and not (v == "runtime/default" or v.startswith("localhost/"))
            for k, v in annotations.items()):
        found.append("forbidden AppArmor profile")
    selinux = [pod.get("seLinuxOptions")] + [_context(c).get("seLinuxOptions") for c in _containers(spec)]
    if any(o and (o.get("type", "") not in SELINUX_TYPES or o.get("user") or o.get("role")) for o in selinux):
        found.append("seLinuxOptions")
    if any(_context(c).get("procMount") not in (None, "Default") for c in _containers(spec)):
        found.append("procMount")
    seccomp = [pod.get("seccompProfile")] + [_context(c).get("seccompProfile") for c in _containers(spec)]
    if any(p and p.get("type") == "Unconfined" for p in seccomp):
        found.append("seccompProfile")
    if any(s.get("name") not in SAFE_SYSCTLS for s in pod.get("sysctls") or ()):
        found.append("forbidden sysctls")
    return found


def restricted_violations(spec: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> list[str]:
    found = baseline_violations(spec, metadata)
    pod = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    if any(not (set(v) & RESTRICTED_VOLUME_TYPES) for v in ({k for k in vol if k != "name"}
                                                          for vol in spec.get("volumes") or ())):
        found.append("restricted volume types")
    if any(_context(c).get("allowPrivilegeEscalation") is not False for c in containers):
        found.append("allowPrivilegeEscalation != false")
    caps = [_context(c).get("capabilities") or {} for c in containers]
    if any("ALL" not in (cap.get("drop") or ()) or set(cap.get("add") or ()) - {"NET_BIND_SERVICE"}
           for cap in caps):
        found.append("unrestricted capabilities")
    # runAsNonRoot: every container true, by its own setting or the pod's; an explicit false is refused.
    pod_non_root = pod.get("runAsNonRoot")
    if pod_non_root is False or any(
            _context(c).get("runAsNonRoot") is False
            or (_context(c).get("runAsNonRoot") is None and pod_non_root is not True) for c in containers):
        found.append("runAsNonRoot != true")
    if pod.get("runAsUser") == 0 or any(_context(c).get("runAsUser") == 0 for c in containers):
        found.append("runAsUser=0")
    pod_seccomp = (pod.get("seccompProfile") or {}).get("type")
    for c in containers:
        own = (_context(c).get("seccompProfile") or {}).get("type")
        effective = own or pod_seccomp
        if effective not in ("RuntimeDefault", "Localhost"):
            found.append("seccompProfile")
            break
    return list(dict.fromkeys(found))


def violations(spec: Mapping[str, Any], level: str, metadata: Mapping[str, Any] | None = None) -> list[str]:
    """The checks `spec` fails at `level` ("privileged" allows everything)."""
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}; expected one of {LEVELS}")
    if level == "privileged":
        return []
    return baseline_violations(spec, metadata) if level == "baseline" else restricted_violations(spec, metadata)
