//! tap's events for the control plane: a thin handle that builds an event only when some
//! client subscribes to its category, so an unwatched tap pays one atomic load per event.

use crate::sink::control::{Category, EventPublisher};
use serde_json::{Map, Value};

#[derive(Clone, Default)]
pub struct Events {
    publisher: Option<EventPublisher>,
}

impl Events {
    pub fn new(publisher: Option<EventPublisher>) -> Events {
        Events { publisher }
    }

    pub fn wants(&self, category: Category) -> bool {
        self.publisher.as_ref().is_some_and(|p| p.wants(category))
    }

    pub fn publish(&self, category: Category, event: &str, fields: Map<String, Value>) {
        self.publish_with(category, event, || fields);
    }

    /// Publish an event whose fields are built only when someone subscribes to its category.
    pub fn publish_with(
        &self,
        category: Category,
        event: &str,
        fields: impl FnOnce() -> Map<String, Value>,
    ) {
        if let Some(p) = &self.publisher
            && p.wants(category)
        {
            p.publish(category, event, fields());
        }
    }
}

/// An event's fields from `(name, value)` pairs.
pub fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
