// Validate Knative and Gateway API objects against the schemas of @kubernetes-models
// (generated from the projects' Go API types). Offline; installed by `make tools`.
//
//   node tools/validate-models.mjs FILE.json   (a JSON array of objects)
//
// Prints one JSON line: [{index, apiVersion, kind, name, status: "ok"|"invalid"|"unsupported", errors}]
// and exits 1 when any object is invalid. Objects of other groups are reported as "unsupported"
// (the caller validates those with kubernetes-validate).
import { readFileSync } from "node:fs";

const PACKAGES = {
  "serving.knative.dev": "@kubernetes-models/knative",
  "eventing.knative.dev": "@kubernetes-models/knative",
  "sources.knative.dev": "@kubernetes-models/knative",
  "messaging.knative.dev": "@kubernetes-models/knative",
  "flows.knative.dev": "@kubernetes-models/knative",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
};

const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = [];
let failed = false;
for (const [index, doc] of docs.entries()) {
  const apiVersion = String(doc?.apiVersion ?? "");
  const kind = String(doc?.kind ?? "");
  const name = doc?.metadata?.name ?? "";
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = PACKAGES[group];
  if (!pkg || !/^[A-Za-z]+$/.test(kind) || !/^v[0-9a-z]+$/.test(version)) {
    results.push({ index, apiVersion, kind, name, status: "unsupported" });
    continue;
  }
  let Model;
  try {
    Model = (await import(`${pkg}/${group}/${version}/${kind}`))[kind];
  } catch {
    Model = undefined;
  }
  if (typeof Model !== "function") {
    results.push({ index, apiVersion, kind, name, status: "unsupported" });
    continue;
  }
  let errors = [];
  try {
    new Model(doc).validate();
  } catch (err) {
    errors = Array.isArray(err?.errors) ? err.errors : [{ instancePath: "", message: String(err?.message ?? err) }];
  }
  // Some generated schemas (e.g. SinkBinding) mark the server-written `status` as required; manifests
  // never carry it, so that one error is not the manifest's.
  errors = errors.filter((e) => !(e.instancePath === "" && e.params?.missingProperty === "status"));
  if (errors.length === 0) {
    results.push({ index, apiVersion, kind, name, status: "ok" });
  } else {
    failed = true;
    const text = errors.map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
    results.push({ index, apiVersion, kind, name, status: "invalid", errors: text });
  }
}
console.log(JSON.stringify(results));
process.exit(failed ? 1 : 0);
