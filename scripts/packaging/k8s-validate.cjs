// k8s-validate.cjs FILE... — validates every object in rendered manifests
// against the Kubernetes API schemas (npm: kubernetes-models,
// @kubernetes-models/prometheus-operator for ServiceMonitor, and
// @kubernetes-models/cert-manager for Certificate and Issuer: the schemas
// of cert-manager's own CRDs): types, enums, required fields.
// scripts/check-packaging.sh installs the packages next to a copy of this
// file. Prints "ok   KIND/NAME (FILE)" or "FAIL ...: why";
// exits 1 if anything failed or a kind has no schema.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const mod = group.endsWith("cert-manager.io")
    ? `@kubernetes-models/cert-manager/${group}/${version}`
    : group === "monitoring.coreos.com"
    ? `@kubernetes-models/prometheus-operator/${group}/${version}`
    : group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  return require(mod)[kind];
}

let failed = 0;
for (const file of process.argv.slice(2)) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
    .map((d) => d.toJS()).filter((d) => d);
  for (const obj of docs) {
    const what = `${obj.kind}/${(obj.metadata || {}).name} (${path.basename(file)})`;
    let Model;
    try {
      Model = modelFor(obj.apiVersion, obj.kind);
    } catch (e) {
      Model = undefined;
    }
    if (!Model) {
      console.log(`FAIL ${what}: no schema for ${obj.apiVersion} ${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok   ${what}`);
    } catch (e) {
      console.log(`FAIL ${what}: ${e.message}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
