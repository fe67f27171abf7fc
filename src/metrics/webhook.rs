//! The admission webhook's counters: reviews by outcome, and requests refused as malformed.

use super::{Exposition, Reason};
use crate::k8s::admission::Outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug)]
pub struct WebhookMetrics {
    registry: Registry,
    reviews: Family<OutcomeLabel, Counter>,
    refused: Family<Reason, Counter>,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WebhookMetrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("gophercap_webhook");
        let reviews = Family::<OutcomeLabel, Counter>::default();
        r.register(
            "reviews",
            "Admission reviews answered, by outcome: injected, already_injected, opted_out, \
             skipped, failed (allowed unchanged with a warning)",
            reviews.clone(),
        );
        for outcome in [
            Outcome::Injected,
            Outcome::AlreadyInjected,
            Outcome::OptedOut,
            Outcome::Skipped,
            Outcome::Failed,
        ] {
            // Every outcome from the start, at zero.
            reviews.get_or_create_owned(&OutcomeLabel {
                outcome: outcome.name(),
            });
        }
        let refused = Family::<Reason, Counter>::default();
        r.register(
            "refused_requests",
            "Requests answered 4xx: malformed (400), too large (413), wrong method or path",
            refused.clone(),
        );
        WebhookMetrics {
            registry: root,
            reviews,
            refused,
        }
    }

    pub fn review(&self, outcome: Outcome) {
        self.reviews
            .get_or_create(&OutcomeLabel {
                outcome: outcome.name(),
            })
            .inc();
    }

    /// A request answered with a 4xx `status`.
    pub fn refused(&self, status: u16) {
        let reason = match status {
            400 => "malformed",
            413 => "too_large",
            404 => "not_found",
            _ => "method",
        };
        self.refused.get_or_create(&Reason { reason }).inc();
    }
}

impl Exposition for WebhookMetrics {
    fn encode(&self) -> String {
        let mut text = String::with_capacity(1024);
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn ready(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_and_refusals_are_counted() {
        let m = WebhookMetrics::new();
        m.review(Outcome::Injected);
        m.review(Outcome::Injected);
        m.refused(400);
        let text = m.encode();
        assert!(
            text.contains("gophercap_webhook_reviews_total{outcome=\"injected\"} 2"),
            "{text}"
        );
        assert!(text.contains("gophercap_webhook_reviews_total{outcome=\"skipped\"} 0"));
        assert!(text.contains("gophercap_webhook_refused_requests_total{reason=\"malformed\"} 1"));
    }
}
