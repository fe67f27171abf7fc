//! What the injector adds to a pod: the `gophercap` container running `http-trace` in its
//! environment form beside the pod's own containers, as a JSON Patch against the pod the API
//! server sent. Decisions that cannot be made (no port to watch, a malformed annotation) never
//! block the pod: they leave it as it is, or fall back to the defaults, with a warning.

use super::annotations::{self, PodAnnotations};
use super::sizing::SidecarLimits;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, Pod, Probe, ResourceRequirements, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The injected container's name; a pod that has a container of this name is left alone.
pub const CONTAINER: &str = "gophercap";

/// A secret's key, as `NAME/KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

impl std::str::FromStr for SecretRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            Some((name, key)) if !name.is_empty() && !key.is_empty() => Ok(SecretRef {
                name: name.to_owned(),
                key: key.to_owned(),
            }),
            _ => Err(format!("{text:?} is not NAME/KEY")),
        }
    }
}

/// CPU and memory of the injected container (Kubernetes quantities).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request: String,
    pub cpu_limit: Option<String>,
    pub memory_request: String,
    /// None: from the sizing formula and the sidecar's limits.
    pub memory_limit: Option<String>,
}

/// The injector's defaults, which a pod's annotations override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectionConfig {
    pub image: String,
    pub image_pull_policy: Option<String>,
    pub interface: String,
    /// Where messages are POSTed; stdout when unset.
    pub output_url: Option<String>,
    /// The bearer token for `output_url`, only ever by reference.
    pub token_secret: Option<SecretRef>,
    pub metrics_port: u16,
    pub resources: Resources,
    /// The sidecar's connection, body and reassembly limits.
    pub limits: SidecarLimits,
}

/// The injector's defaults (also `gophercap webhook`'s flags' defaults).
pub const DEFAULT_INTERFACE: &str = "eth0";
pub const DEFAULT_METRICS_PORT: u16 = 9100;
pub const DEFAULT_CPU_REQUEST: &str = "50m";
pub const DEFAULT_MEMORY_REQUEST: &str = "64Mi";

impl InjectionConfig {
    /// The injector's defaults for `image`: capture on eth0, write to stdout, metrics on 9100,
    /// a request of 50m CPU and 64 MiB, the memory limit from the sizing formula for the
    /// default sidecar limits.
    pub fn new(image: impl Into<String>) -> Self {
        InjectionConfig {
            image: image.into(),
            image_pull_policy: None,
            interface: DEFAULT_INTERFACE.into(),
            output_url: None,
            token_secret: None,
            metrics_port: DEFAULT_METRICS_PORT,
            resources: Resources {
                cpu_request: DEFAULT_CPU_REQUEST.into(),
                cpu_limit: None,
                memory_request: DEFAULT_MEMORY_REQUEST.into(),
                memory_limit: None,
            },
            limits: SidecarLimits::default(),
        }
    }
}

/// What to do with one pod.
#[derive(Debug)]
pub enum Decision {
    /// Labelled `gophercap.io/inject: "false"`.
    OptedOut,
    /// The sidecar is there already (a reinvocation, or added by hand).
    AlreadyInjected,
    /// Nothing to inject; the warning says why.
    Skipped { warning: String },
    Inject {
        patch: Patch,
        /// What was added, as recorded in the `gophercap.io/injected` annotation.
        summary: String,
        /// Annotations that were malformed and replaced by the defaults.
        warnings: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("the pod has no spec")]
    NoSpec,
    #[error("cannot encode the container: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Decide for `pod` (as sent by the API server: perhaps without a name, annotations or labels).
pub fn decide(pod: &Pod, config: &InjectionConfig) -> Result<Decision, InjectError> {
    let labels = pod.metadata.labels.as_ref();
    if labels
        .and_then(|l| l.get(annotations::INJECT))
        .map(String::as_str)
        == Some("false")
    {
        return Ok(Decision::OptedOut);
    }
    let spec = pod.spec.as_ref().ok_or(InjectError::NoSpec)?;
    let existing = pod.metadata.annotations.as_ref();
    if spec.containers.iter().any(|c| c.name == CONTAINER)
        || existing.is_some_and(|a| a.contains_key(annotations::INJECTED))
    {
        return Ok(Decision::AlreadyInjected);
    }
    let wanted = PodAnnotations::read(existing);
    let mut warnings = wanted.warnings.clone();
    let ports = match &wanted.ports {
        Some(ports) => ports.clone(),
        None => declared_ports(pod),
    };
    if ports.is_empty() {
        warnings.push(format!(
            "gophercap: not injected: no {} annotation and no TCP containerPort declared",
            annotations::PORTS
        ));
        return Ok(Decision::Skipped {
            warning: warnings.join("; "),
        });
    }
    let metrics_port = free_port(pod, config.metrics_port);
    let container = sidecar(config, &wanted, &ports, metrics_port);
    let ports_text = join(&ports);
    let summary = format!(
        "container={CONTAINER} image={} ports={ports_text} metrics={metrics_port}",
        config.image
    );
    let mut operations = vec![PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(["spec", "containers", "-"]),
        value: serde_json::to_value(container)?,
    })];
    operations.push(match existing {
        Some(_) => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", annotations::INJECTED]),
            value: summary.clone().into(),
        }),
        None => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: serde_json::to_value(BTreeMap::from([(
                annotations::INJECTED,
                summary.clone(),
            )]))?,
        }),
    });
    Ok(Decision::Inject {
        patch: Patch(operations),
        summary,
        warnings,
    })
}

/// The TCP ports the pod's containers declare, in order, each once.
fn declared_ports(pod: &Pod) -> Vec<u16> {
    let mut ports = Vec::new();
    let containers = pod.spec.iter().flat_map(|s| &s.containers);
    for port in containers.flat_map(|c| c.ports.iter().flatten()) {
        let tcp = port.protocol.as_deref().is_none_or(|p| p == "TCP");
        if let Ok(number) = u16::try_from(port.container_port)
            && tcp
            && number > 0
            && !ports.contains(&number)
        {
            ports.push(number);
        }
    }
    ports
}

/// `wanted`, or the next port no container of the pod declares (they share one network).
fn free_port(pod: &Pod, wanted: u16) -> u16 {
    let taken: Vec<i32> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| p.container_port)
        .collect();
    (wanted..=u16::MAX)
        .find(|p| !taken.contains(&i32::from(*p)))
        .unwrap_or(wanted)
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, port: u16) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(i32::from(port)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

/// The securityContext a capture needs in a pod and nothing more: root without any capability
/// but NET_RAW, no privilege escalation, a read-only root. Root, because Kubernetes' runtimes
/// give an added capability to uid 0 only (not to the ambient set of another user), and file
/// capabilities are ignored under no_new_privs.
pub fn security_context() -> SecurityContext {
    SecurityContext {
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: Some(vec!["NET_RAW".into()]),
        }),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_user: Some(0),
        run_as_non_root: Some(false),
        ..SecurityContext::default()
    }
}

fn sidecar(
    config: &InjectionConfig,
    wanted: &PodAnnotations,
    ports: &[u16],
    metrics_port: u16,
) -> Container {
    let output_url = wanted.output_url.clone().or(config.output_url.clone());
    let stdout = wanted.output_stdout.unwrap_or(output_url.is_none());
    let limits = SidecarLimits {
        max_connections: wanted
            .max_connections
            .unwrap_or(config.limits.max_connections),
        max_body_size: wanted.max_body_size.unwrap_or(config.limits.max_body_size),
        max_reassembly_mb: wanted
            .max_reassembly_mb
            .unwrap_or(config.limits.max_reassembly_mb),
    };
    let memory_limit = wanted
        .memory_limit
        .clone()
        .or(config.resources.memory_limit.clone())
        .unwrap_or_else(|| limits.memory_limit(output_url.is_some()));
    let mut env = vec![
        value("PORTS", join(ports)),
        value(
            "INTERFACE",
            wanted.interface.as_deref().unwrap_or(&config.interface),
        ),
    ];
    if let Some(url) = &output_url {
        env.push(value("OUTPUT_URL", url));
        if let Some(secret) = wanted
            .token_secret
            .as_ref()
            .or(config.token_secret.as_ref())
        {
            env.push(EnvVar {
                name: "OUTPUT_URL_AUTH_TOKEN".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.name.clone(),
                        key: secret.key.clone(),
                        ..SecretKeySelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
    }
    if stdout {
        env.push(value("OUTPUT_STDOUT", "true"));
    }
    env.push(value("METRICS_ADDR", format!(":{metrics_port}")));
    env.push(from_field("POD_NAME", "metadata.name"));
    env.push(from_field("NAMESPACE", "metadata.namespace"));
    env.push(from_field("NODE_NAME", "spec.nodeName"));
    let r = &config.resources;
    let quantity =
        |own: &Option<String>, default: &str| Quantity(own.clone().unwrap_or(default.into()));
    let mut requests = BTreeMap::from([
        (
            "cpu".to_owned(),
            quantity(&wanted.cpu_request, &r.cpu_request),
        ),
        (
            "memory".to_owned(),
            quantity(&wanted.memory_request, &r.memory_request),
        ),
    ]);
    let mut quantity_limits = BTreeMap::from([("memory".to_owned(), Quantity(memory_limit))]);
    if let Some(cpu) = wanted.cpu_limit.as_ref().or(r.cpu_limit.as_ref()) {
        quantity_limits.insert("cpu".into(), Quantity(cpu.clone()));
    }
    // A request above its limit would make the pod invalid: the limit wins.
    if annotations::quantity_bytes(&requests["memory"].0)
        > annotations::quantity_bytes(&quantity_limits["memory"].0)
    {
        requests.insert("memory".into(), quantity_limits["memory"].clone());
    }
    let mut args = vec!["http-trace".to_owned()];
    args.extend(limits.flags());
    Container {
        name: CONTAINER.into(),
        image: Some(config.image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("gc-metrics".into()),
            container_port: i32::from(metrics_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        // Liveness only: a readiness probe would take the application out of its Service
        // whenever the sidecar is not ready.
        liveness_probe: Some(http_probe("/healthz", metrics_port)),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(quantity_limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security_context()),
        ..Container::default()
    }
}
