//! One admission review: an `admission.k8s.io/v1` AdmissionReview of a Pod in, the review's
//! answer out. The pod is always allowed; the answer carries the sidecar's JSON Patch (base64,
//! as the API server's documentation shows it) or nothing, and warnings the API server shows
//! to whoever created the pod. Only a request that is not an AdmissionReview is refused.

use super::inject::{Decision, InjectionConfig, decide};
use k8s_openapi::api::core::v1::Pod;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

/// What became of a review, for the log and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    AlreadyInjected,
    OptedOut,
    /// Nothing to inject (no ports), or not a pod creation.
    Skipped,
    /// Something went wrong inside: allowed unchanged, with a warning.
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Injected => "injected",
            Outcome::AlreadyInjected => "already_injected",
            Outcome::OptedOut => "opted_out",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// The answer to one review.
#[derive(Debug)]
pub struct Reviewed {
    /// The AdmissionReview to send back, as JSON.
    pub body: Vec<u8>,
    pub outcome: Outcome,
    pub uid: String,
    /// The pod, as `namespace/name` (or `namespace/generateName*` before it has a name).
    pub pod: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not an AdmissionReview of a Pod: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("apiVersion {0:?}: only admission.k8s.io/v1 is served")]
    Version(String),
}

/// Answer the AdmissionReview in `body`.
pub fn review(body: &[u8], config: &InjectionConfig) -> Result<Reviewed, ReviewError> {
    let review: AdmissionReview<Pod> = serde_json::from_slice(body)?;
    if review.types.api_version != kube_core::admission::META_API_VERSION_V1 {
        return Err(ReviewError::Version(review.types.api_version));
    }
    let request: AdmissionRequest<Pod> = review.try_into().map_err(|_| ReviewError::NoRequest)?;
    let pod = describe(&request);
    let mut response = AdmissionResponse::from(&request);
    let mut warnings = Vec::new();
    let outcome = match (&request.operation, &request.object) {
        (Operation::Create, Some(object)) if request.kind.kind == "Pod" => {
            match decide(object, config) {
                Ok(Decision::Inject {
                    patch, warnings: w, ..
                }) => {
                    warnings = w;
                    match response.clone().with_patch(patch) {
                        Ok(patched) => {
                            response = patched;
                            Outcome::Injected
                        }
                        Err(e) => {
                            warnings.push(format!("gophercap: not injected: {e}"));
                            Outcome::Failed
                        }
                    }
                }
                Ok(Decision::AlreadyInjected) => Outcome::AlreadyInjected,
                Ok(Decision::OptedOut) => Outcome::OptedOut,
                Ok(Decision::Skipped { warning }) => {
                    warnings.push(warning);
                    Outcome::Skipped
                }
                Err(e) => {
                    warnings.push(format!("gophercap: not injected: {e}"));
                    Outcome::Failed
                }
            }
        }
        _ => Outcome::Skipped,
    };
    if !warnings.is_empty() {
        response.warnings = Some(warnings.clone());
    }
    let body = encode(response)?;
    Ok(Reviewed {
        body,
        outcome,
        uid: request.uid,
        pod,
        warnings,
    })
}

/// The review as JSON, its patch in base64 (kube-core writes the bytes as a list of numbers,
/// which the API server also reads, but the documented form is a base64 string).
fn encode(response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    let mut review = serde_json::to_value(response.into_review())?;
    if let Some(patch) = review.pointer_mut("/response/patch")
        && let Ok(bytes) = serde_json::from_value::<Vec<u8>>(patch.take())
    {
        *patch = base64_simd::STANDARD.encode_to_string(bytes).into();
    }
    serde_json::to_vec(&review)
}

fn describe(request: &AdmissionRequest<Pod>) -> String {
    let namespace = request.namespace.as_deref().unwrap_or("");
    let meta = request.object.as_ref().map(|p| &p.metadata);
    match (
        meta.and_then(|m| m.name.as_deref()),
        meta.and_then(|m| m.generate_name.as_deref()),
    ) {
        (Some(name), _) => format!("{namespace}/{name}"),
        (None, Some(prefix)) => format!("{namespace}/{prefix}*"),
        (None, None) if !request.name.is_empty() => format!("{namespace}/{}", request.name),
        _ => format!("{namespace}/?"),
    }
}
