"""Check what no schema can see in the manifests under deploy/ (the schemas themselves are
checked by tests/deploy.rs): each kustomization lists exactly the files beside it, and the
injector's pieces name each other (the Certificate's Secret is the one the Deployment mounts,
its DNS names are the Service's, the webhook configuration calls that Service on its port and
takes its CA from that Certificate). cert-manager's kinds have no schema offline: their fields
are checked by hand below.

usage: check_manifests.py DEPLOY_DIR; exits 1 with every problem, 2 when PyYAML is missing.
"""
import os
import sys

try:
    import yaml
except ImportError as e:
    print(f"missing: {e.name} (pip install kubernetes-validate, which brings it)", file=sys.stderr)
    sys.exit(2)

root = sys.argv[1]
problems = []
documents = []  # (path, document)

for folder, _, files in sorted(os.walk(root)):
    yamls = sorted(f for f in files if f.endswith((".yaml", ".yml")))
    for name in yamls:
        path = os.path.join(folder, name)
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    documents.append((path, doc))
    if "kustomization.yaml" in yamls:
        with open(os.path.join(folder, "kustomization.yaml")) as f:
            listed = set(yaml.safe_load(f).get("resources", []))
        present = {n for n in yamls if n != "kustomization.yaml"}
        subfolders = {d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))}
        for missing in sorted(present - listed):
            problems.append(f"{folder}/kustomization.yaml does not list {missing}")
        for extra in sorted(listed - present - subfolders):
            problems.append(f"{folder}/kustomization.yaml lists {extra}, which is not there")

def find(kind, name=None):
    return [d for _, d in documents if d.get("kind") == kind
            and (name is None or d["metadata"]["name"] == name)]

def expect(condition, what):
    if not condition:
        problems.append(what)

for cert in find("Certificate"):
    spec = cert["spec"]
    expect(set(spec) <= {"secretName", "duration", "renewBefore", "dnsNames", "privateKey",
                         "usages", "issuerRef", "commonName", "subject"},
           f"Certificate {cert['metadata']['name']}: unknown fields {sorted(spec)}")
    expect(find("Issuer", spec["issuerRef"]["name"]),
           f"Certificate issuer {spec['issuerRef']['name']} is not defined")
for issuer in find("Issuer"):
    expect(set(issuer["spec"]) <= {"selfSigned", "ca"}, f"Issuer: unknown fields")

webhooks = find("MutatingWebhookConfiguration")
if webhooks:
    config = webhooks[0]
    ca_from = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    ca_ns, ca_name = ca_from.split("/")
    certs = find("Certificate", ca_name)
    expect(certs and certs[0]["metadata"]["namespace"] == ca_ns,
           f"inject-ca-from {ca_from} names no Certificate")
    for hook in config["webhooks"]:
        svc_ref = hook["clientConfig"]["service"]
        services = find("Service", svc_ref["name"])
        expect(services, f"{hook['name']}: no Service {svc_ref['name']}")
        if services and certs:
            svc = services[0]
            expect(svc["metadata"]["namespace"] == svc_ref["namespace"],
                   f"{hook['name']}: Service namespace")
            expect(any(p["port"] == svc_ref.get("port", 443) for p in svc["spec"]["ports"]),
                   f"{hook['name']}: the Service has no port {svc_ref.get('port')}")
            name = f"{svc_ref['name']}.{svc_ref['namespace']}.svc"
            expect(name in certs[0]["spec"]["dnsNames"],
                   f"the Certificate does not cover {name}")
            excluded = [e for e in hook["namespaceSelector"]["matchExpressions"]
                        if e["key"] == "kubernetes.io/metadata.name"]
            expect(excluded and {"kube-system", svc_ref["namespace"]} <= set(excluded[0]["values"]),
                   f"{hook['name']}: its own namespace and kube-system must be excluded")
        expect(hook["failurePolicy"] == "Ignore", f"{hook['name']}: failurePolicy")
        expect(hook["sideEffects"] == "None", f"{hook['name']}: sideEffects")
        expect(hook["admissionReviewVersions"] == ["v1"], f"{hook['name']}: versions")
        expect(hook.get("reinvocationPolicy") == "IfNeeded", f"{hook['name']}: reinvocation")
    for deployment in find("Deployment", "gophercap-webhook"):
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        secrets = [v["secret"]["secretName"] for v in volumes if "secret" in v]
        expect(certs and certs[0]["spec"]["secretName"] in secrets,
               "the Deployment does not mount the Certificate's Secret")

for p in problems:
    print(p, file=sys.stderr)
print(f"{len(documents)} documents checked")
sys.exit(1 if problems else 0)
