"""Apply the JSON Patch of an AdmissionReview answer to the pod of its request, with an
implementation independent of gophercap's (the jsonpatch package), and validate the patched
pod against the Kubernetes schemas in strict mode (kubernetes-validate, offline). Prints the
patched pod as JSON; exits 1 with the reason when the patch does not apply or the pod is
invalid, 2 when the packages are missing.

usage: patched_pod.py REQUEST.json ANSWER.json [KUBERNETES_VERSION]
"""
import base64
import json
import sys

try:
    import jsonpatch
    import kubernetes_validate
except ImportError as e:
    print(f"missing: {e.name} (pip install jsonpatch kubernetes-validate)", file=sys.stderr)
    sys.exit(2)

request_path, answer_path = sys.argv[1], sys.argv[2]
version = sys.argv[3] if len(sys.argv) > 3 else kubernetes_validate.latest_version()
with open(request_path) as f:
    request = json.load(f)
with open(answer_path) as f:
    answer = json.load(f)

pod = request["request"]["object"]
patch = json.loads(base64.b64decode(answer["response"]["patch"]))
try:
    patched = jsonpatch.apply_patch(pod, patch)
    kubernetes_validate.validate(patched, version, strict=True)
except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
    print(f"the patch does not apply: {e}", file=sys.stderr)
    sys.exit(1)
except kubernetes_validate.ValidationError as e:
    print(f"the patched pod is not valid for Kubernetes {version}: {e.message}", file=sys.stderr)
    sys.exit(1)
json.dump(patched, sys.stdout)
