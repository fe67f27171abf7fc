//! `gophercap webhook`: the mutating admission webhook that puts the `http-trace` sidecar into
//! opted-in pods, over HTTPS; and `webhook certs`, which makes its certificates.

use super::capture_input::stop_on_signals;
use super::{Outcome, UsageError};
use crate::k8s::admission::review;
use crate::k8s::certs;
use crate::k8s::inject::{self, InjectionConfig, Resources, SecretRef};
use crate::k8s::sizing::{self, SidecarLimits};
use crate::metrics::webhook::WebhookMetrics;
use crate::metrics::{self, Exposition};
use crate::server::tls::{TlsFiles, server_config};
use crate::server::{Handler, Method, Request, Response, Server, parse_listen_address};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WebhookArgs {
    #[command(subcommand)]
    pub action: Option<WebhookAction>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum WebhookAction {
    /// Write a CA and a serving certificate for NAME.NS.svc into DIR (ca.crt, tls.crt,
    /// tls.key) and print the caBundle, for clusters without cert-manager.
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// The webhook's Service name.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The Service's namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: String,
    /// Where to write the files (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The serving certificate (PEM, with its chain); reloaded when the file changes.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM); reloaded with the certificate.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Where to serve POST /mutate, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: String,
    /// The gophercap image the sidecar runs.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// The sidecar's imagePullPolicy (the cluster's default when not given).
    #[arg(long, value_name = "POLICY")]
    pub image_pull_policy: Option<String>,
    /// The interface the sidecar captures on (a pod's own: eth0).
    #[arg(long, value_name = "IFACE", default_value = inject::DEFAULT_INTERFACE)]
    pub interface: String,
    /// Default POST endpoint of the sidecars' messages (stdout when not given).
    #[arg(long, value_name = "URL")]
    pub output_url: Option<String>,
    /// Default secret holding the POST bearer token, NAME/KEY (referenced, never copied).
    #[arg(long, value_name = "NAME/KEY")]
    pub output_token_secret: Option<String>,
    /// The sidecar's metrics port (the next free one when a container of the pod has it).
    #[arg(long, value_name = "PORT", default_value_t = inject::DEFAULT_METRICS_PORT)]
    pub sidecar_metrics_port: u16,
    /// The sidecar's CPU request.
    #[arg(long, value_name = "QTY", default_value = inject::DEFAULT_CPU_REQUEST)]
    pub cpu_request: String,
    /// The sidecar's CPU limit (none unless given).
    #[arg(long, value_name = "QTY")]
    pub cpu_limit: Option<String>,
    /// The sidecar's memory request.
    #[arg(long, value_name = "QTY", default_value = inject::DEFAULT_MEMORY_REQUEST)]
    pub memory_request: String,
    /// The sidecar's memory limit (by default what its limits below need at most, by the
    /// README's sizing formula, and a quarter more).
    #[arg(long, value_name = "QTY")]
    pub memory_limit: Option<String>,
    /// The sidecar's --max-concurrent-connections.
    #[arg(long, value_name = "N", default_value_t = sizing::DEFAULT_MAX_CONNECTIONS)]
    pub sidecar_max_connections: u64,
    /// The sidecar's --max-body-size.
    #[arg(long, value_name = "BYTES", default_value_t = sizing::DEFAULT_MAX_BODY_SIZE)]
    pub sidecar_max_body_size: u64,
    /// The sidecar's --max-reassembly-mb.
    #[arg(long, value_name = "MB", default_value_t = sizing::DEFAULT_MAX_REASSEMBLY_MB)]
    pub sidecar_max_reassembly_mb: u64,
    #[command(flatten)]
    pub metrics: super::capture_input::MetricsArgs,
}

pub fn run(args: &WebhookArgs) -> anyhow::Result<Outcome> {
    match &args.action {
        Some(WebhookAction::Certs(certs)) => write_certs(certs),
        None => serve(&args.serve),
    }
}

fn write_certs(args: &CertsArgs) -> anyhow::Result<Outcome> {
    let issued =
        certs::issue(&args.service, &args.namespace).context("cannot make the certificates")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for (name, text) in [
        ("ca.crt", &issued.ca_crt),
        ("tls.crt", &issued.tls_crt),
        ("tls.key", &issued.tls_key),
    ] {
        let path = args.out.join(name);
        write_private(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{}", issued.ca_bundle());
    Ok(Outcome::default())
}

/// Write `text` to `path`, readable by its owner only (it may be a private key), replacing
/// the file in one rename so a server reloading it never reads half of it.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

fn injection_config(args: &ServeArgs) -> anyhow::Result<InjectionConfig> {
    let usage = |m: String| anyhow::Error::new(UsageError(m));
    let image = args
        .image
        .clone()
        .ok_or_else(|| usage("webhook: --image is required".into()))?;
    let token_secret = args
        .output_token_secret
        .as_deref()
        .map(str::parse::<SecretRef>)
        .transpose()
        .map_err(|e| usage(format!("--output-token-secret: {e}")))?;
    Ok(InjectionConfig {
        image,
        image_pull_policy: args.image_pull_policy.clone(),
        interface: args.interface.clone(),
        output_url: args.output_url.clone(),
        token_secret,
        metrics_port: args.sidecar_metrics_port,
        resources: Resources {
            cpu_request: args.cpu_request.clone(),
            cpu_limit: args.cpu_limit.clone(),
            memory_request: args.memory_request.clone(),
            memory_limit: args.memory_limit.clone(),
        },
        limits: SidecarLimits {
            max_connections: args.sidecar_max_connections,
            max_body_size: args.sidecar_max_body_size,
            max_reassembly_mb: args.sidecar_max_reassembly_mb,
        },
    })
}

/// Answer one request of the API server (or a probe).
fn answer(request: &Request, config: &InjectionConfig, metrics: &WebhookMetrics) -> Response {
    let response = match (&request.method, request.path.as_str()) {
        (&Method::POST, "/mutate") => match review(&request.body, config) {
            Ok(reviewed) => {
                metrics.review(reviewed.outcome);
                tracing::info!(
                    uid = %reviewed.uid,
                    pod = %reviewed.pod,
                    outcome = reviewed.outcome.name(),
                    warnings = %reviewed.warnings.join("; "),
                    "admission review"
                );
                Response {
                    status: 200,
                    content_type: "application/json",
                    body: reviewed.body.into(),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a malformed admission review");
                Response::text(400, format!("{e}\n"))
            }
        },
        (_, "/mutate") => Response::text(405, "POST an AdmissionReview here\n"),
        (&Method::GET, "/healthz") => Response::text(200, "ok\n"),
        (&Method::GET, "/readyz") => Response::text(200, "ready\n"),
        _ => Response::text(404, "not found: POST /mutate, GET /healthz, /readyz\n"),
    };
    if (400..500).contains(&response.status) {
        metrics.refused(response.status);
    }
    response
}

fn serve(args: &ServeArgs) -> anyhow::Result<Outcome> {
    let usage = |m: &str| anyhow::Error::new(UsageError(m.to_owned()));
    let config = Arc::new(injection_config(args)?);
    let files = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => return Err(usage("webhook: --tls-cert and --tls-key are required")),
    };
    let address =
        parse_listen_address(&args.listen).map_err(|e| UsageError(format!("--listen: {e}")))?;
    let tls = server_config(&files).context("cannot load the TLS certificate")?;
    let stop = stop_on_signals()?;
    let metrics = Arc::new(WebhookMetrics::new());
    let metrics_server = match &args.metrics.metrics_addr {
        Some(text) => {
            let address = parse_listen_address(text)
                .map_err(|e| UsageError(format!("--metrics-addr: {e}")))?;
            let server = metrics::serve(Arc::clone(&metrics) as Arc<dyn Exposition>, address)?;
            tracing::info!(address = %server.address(), "serving /metrics, /healthz and /readyz");
            Some(server)
        }
        None => None,
    };
    let handler: Handler = {
        let (config, metrics) = (Arc::clone(&config), Arc::clone(&metrics));
        Arc::new(move |request| answer(request, &config, &metrics))
    };
    let server = Server::start_tls(address, handler, tls)?;
    tracing::info!(
        address = %server.address(),
        image = %config.image,
        "webhook listening"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    tracing::info!("webhook stopping: draining the requests in flight");
    drop(server);
    drop(metrics_server);
    Ok(Outcome::default())
}
