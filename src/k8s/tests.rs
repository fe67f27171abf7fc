use super::admission::{Outcome, review};
use super::inject::{CONTAINER, InjectionConfig};
use serde_json::{Value, json};

fn config() -> InjectionConfig {
    InjectionConfig::new("registry.example/gophercap:0.1.0")
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/testdata/admission/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The answer to `request`, and the pod with its patch applied (when there is one).
fn answer(request: &Value) -> (Value, Option<Value>, Outcome) {
    let reviewed = review(&serde_json::to_vec(request).unwrap(), &config()).unwrap();
    let answer: Value = serde_json::from_slice(&reviewed.body).unwrap();
    let response = &answer["response"];
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(response["uid"], request["request"]["uid"]);
    assert_eq!(response["allowed"], true);
    let patched = response["patch"].as_str().map(|encoded| {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64_simd::STANDARD.decode_to_vec(encoded).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        let mut pod = request["request"]["object"].clone();
        json_patch::patch(&mut pod, &patch).unwrap();
        pod
    });
    (answer, patched, reviewed.outcome)
}

fn sidecar(pod: &Value) -> &Value {
    let containers = pod["spec"]["containers"].as_array().unwrap();
    containers.iter().find(|c| c["name"] == CONTAINER).unwrap()
}

fn env(container: &Value, name: &str) -> Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Applying the answer again to the patched pod changes nothing.
fn second_pass_is_empty(request: &Value, patched: &Value) {
    let mut again = request.clone();
    again["request"]["object"] = patched.clone();
    let (answer, repatched, outcome) = self::answer(&again);
    assert_eq!(outcome, Outcome::AlreadyInjected);
    assert!(repatched.is_none(), "{answer}");
    assert!(answer["response"].get("patch").is_none());
}

#[test]
fn a_controller_made_pod_without_name_or_annotations_gets_the_sidecar() {
    let request = fixture("deployment-pod.json");
    let (_, patched, outcome) = answer(&request);
    assert_eq!(outcome, Outcome::Injected);
    let pod = patched.unwrap();
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(
        containers[0]["name"], "web",
        "the app's container stays first"
    );
    let c = sidecar(&pod);
    assert_eq!(c["image"], "registry.example/gophercap:0.1.0");
    assert_eq!(
        c["args"],
        json!([
            "http-trace",
            "--max-concurrent-connections=2000",
            "--max-body-size=65536",
            "--max-reassembly-mb=32"
        ])
    );
    assert_eq!(env(c, "PORTS")["value"], "8080", "the TCP port only");
    assert_eq!(env(c, "INTERFACE")["value"], "eth0");
    assert_eq!(env(c, "OUTPUT_STDOUT")["value"], "true");
    assert_eq!(env(c, "OUTPUT_URL"), Value::Null);
    assert_eq!(env(c, "METRICS_ADDR")["value"], ":9100");
    assert_eq!(
        env(c, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env(c, "NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env(c, "NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    let security = &c["securityContext"];
    assert_eq!(
        security["capabilities"],
        json!({"drop": ["ALL"], "add": ["NET_RAW"]})
    );
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["runAsUser"], 0);
    assert_eq!(
        c["resources"]["limits"]["memory"], "344Mi",
        "the sizing formula for the default limits, not posting"
    );
    assert_eq!(c["ports"][0]["containerPort"], 9100);
    assert!(
        c.get("readinessProbe").is_none(),
        "never gates the pod's readiness"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    let injected = &pod["metadata"]["annotations"]["gophercap.io/injected"];
    assert!(
        injected.as_str().unwrap().contains("ports=8080"),
        "{injected}"
    );
    assert_eq!(pod["metadata"]["generateName"], "web-7f9c6d9b8-");
    second_pass_is_empty(&request, &pod);
}

#[test]
fn annotations_choose_ports_output_token_and_memory() {
    let request = fixture("annotated-pod.json");
    let (answer, patched, outcome) = answer(&request);
    assert_eq!(outcome, Outcome::Injected);
    assert!(answer["response"].get("warnings").is_none(), "{answer}");
    let pod = patched.unwrap();
    let c = sidecar(&pod);
    assert_eq!(env(c, "PORTS")["value"], "8080,9090");
    assert_eq!(
        env(c, "OUTPUT_URL")["value"],
        "https://collector.payments.svc/ingest"
    );
    assert_eq!(env(c, "OUTPUT_STDOUT"), Value::Null);
    assert_eq!(
        env(c, "OUTPUT_URL_AUTH_TOKEN")["valueFrom"]["secretKeyRef"],
        json!({"name": "collector-token", "key": "token"}),
        "the token only by reference"
    );
    assert_eq!(c["resources"]["limits"]["memory"], "384Mi");
    assert_eq!(
        env(c, "METRICS_ADDR")["value"],
        ":9101",
        "9100 is the proxy's, in the same network namespace"
    );
    // The existing annotations are kept; ours is added under its escaped key.
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(
        annotations["kubectl.kubernetes.io/last-applied-configuration"],
        "{}"
    );
    assert!(annotations["gophercap.io/injected"].is_string());
    // Init and ephemeral containers, volumes and the app's env are untouched.
    assert_eq!(
        pod["spec"]["initContainers"],
        request["request"]["object"]["spec"]["initContainers"]
    );
    assert_eq!(
        pod["spec"]["ephemeralContainers"],
        request["request"]["object"]["spec"]["ephemeralContainers"]
    );
    assert_eq!(
        pod["spec"]["containers"][0],
        request["request"]["object"]["spec"]["containers"][0]
    );
    second_pass_is_empty(&request, &pod);
}

#[test]
fn a_pod_without_ports_is_left_alone_with_a_warning() {
    let request = fixture("bare-pod.json");
    let (answer, patched, outcome) = answer(&request);
    assert_eq!(outcome, Outcome::Skipped);
    assert!(patched.is_none());
    let warning = answer["response"]["warnings"][0].as_str().unwrap();
    assert!(warning.contains("gophercap.io/ports"), "{warning}");
}

#[test]
fn a_pod_labelled_false_opts_out() {
    let mut request = fixture("deployment-pod.json");
    request["request"]["object"]["metadata"]["labels"]["gophercap.io/inject"] = "false".into();
    let (_, patched, outcome) = answer(&request);
    assert_eq!(outcome, Outcome::OptedOut);
    assert!(patched.is_none());
}

#[test]
fn a_malformed_annotation_falls_back_to_the_default_and_warns() {
    let mut request = fixture("deployment-pod.json");
    request["request"]["object"]["metadata"]["annotations"] =
        json!({"gophercap.io/memory-limit": "lots"});
    let (answer, patched, outcome) = answer(&request);
    assert_eq!(outcome, Outcome::Injected);
    assert_eq!(
        sidecar(&patched.unwrap())["resources"]["limits"]["memory"],
        "344Mi"
    );
    let warning = answer["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("gophercap.io/memory-limit=\"lots\""),
        "{warning}"
    );
}

#[test]
fn only_pod_creations_are_patched() {
    let mut request = fixture("deployment-pod.json");
    request["request"]["operation"] = "UPDATE".into();
    request["request"]["oldObject"] = request["request"]["object"].clone();
    let (_, patched, outcome) = answer(&request);
    assert_eq!(outcome, Outcome::Skipped);
    assert!(patched.is_none());
}

#[test]
fn what_is_not_an_admission_review_is_an_error() {
    for body in [
        &b"not json"[..],
        br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
        br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}"#,
        br#"[1, 2]"#,
    ] {
        assert!(
            review(body, &config()).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn the_limits_annotations_set_the_flags_and_the_memory_follows() {
    let mut request = fixture("deployment-pod.json");
    request["request"]["object"]["metadata"]["annotations"] = json!({
        "gophercap.io/max-body-size": "1048576",
        "gophercap.io/max-concurrent-connections": "500"
    });
    let (_, patched, _) = answer(&request);
    let pod = patched.unwrap();
    let c = sidecar(&pod);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--max-body-size=1048576"), "{args:?}");
    assert!(
        args.contains(&"--max-concurrent-connections=500"),
        "{args:?}"
    );
    let limits = super::sizing::SidecarLimits {
        max_connections: 500,
        max_body_size: 1 << 20,
        max_reassembly_mb: 32,
    };
    assert_eq!(
        c["resources"]["limits"]["memory"],
        limits.memory_limit(false)
    );
}
