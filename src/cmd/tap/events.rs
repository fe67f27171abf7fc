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
        if let Some(p) = &self.publisher
            && p.wants(category)
        {
            p.publish(category, event, fields);
        }
    }
}
