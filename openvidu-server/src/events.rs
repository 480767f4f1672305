//! Where server events go: the webhook queue and the CDR file. Emitting never blocks a request:
//! events enter bounded queues drained by background tasks; a full queue drops the event with a
//! warning rather than stall the API.

use openvidu_core::wire::webhook::{EventType, WebhookEvent};
use tokio::sync::mpsc;

/// Capacity of each event queue.
pub const QUEUE_CAPACITY: usize = 16_384;

/// The sink every service emits events into. Cheap to clone.
#[derive(Clone, Default)]
pub struct Events {
    webhook: Option<(mpsc::Sender<WebhookEvent>, Vec<EventType>)>,
    cdr: Option<mpsc::Sender<WebhookEvent>>,
}

impl Events {
    /// A sink feeding a webhook queue (for these event types) and/or a CDR queue.
    pub fn new(
        webhook: Option<(mpsc::Sender<WebhookEvent>, Vec<EventType>)>,
        cdr: Option<mpsc::Sender<WebhookEvent>>,
    ) -> Self {
        Self { webhook, cdr }
    }

    /// Queues an event for the webhook (if its type is enabled) and the CDR.
    pub fn emit(&self, event: WebhookEvent) {
        if let Some(tx) = &self.cdr
            && tx.try_send(event.clone()).is_err()
        {
            tracing::warn!(event = %event.event_type(), "CDR queue full or closed; event dropped");
        }
        if let Some((tx, types)) = &self.webhook {
            let kind = event.event_type();
            if types.contains(&kind) && tx.try_send(event).is_err() {
                tracing::warn!(event = %kind, "webhook queue full or closed; event dropped");
            }
        }
    }
}
