//! The webhook poster: one background task posts queued events in order, one at a time, as
//! OpenVidu does, retrying transport failures and 5xx answers on a fixed schedule.

use std::time::Duration;

use openvidu_core::wire::webhook::WebhookEvent;
use tokio::sync::mpsc;

use crate::config::WebhookConfig;

/// When to try a failed post again: the decision, without a clock or a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    /// Five attempts in all, as OpenVidu's HTTP client makes: after 0.2, 0.4, 0.8 and 1.6 s.
    fn default() -> Self {
        Self { delays: (0..4).map(|i| Duration::from_millis(200 << i)).collect() }
    }
}

impl RetrySchedule {
    /// The wait before attempt `failed + 1` after `failed` failures, or `None` to give up.
    pub fn after_failures(&self, failed: usize) -> Option<Duration> {
        failed.checked_sub(1).and_then(|i| self.delays.get(i)).copied()
    }
}

/// What one attempt gave.
enum Outcome {
    Delivered,
    Refused(u16),
    Retry(String),
}

/// Posts every event of `rx` to the webhook, in order, until the queue closes.
pub async fn run(config: WebhookConfig, mut rx: mpsc::Receiver<WebhookEvent>, schedule: RetrySchedule) {
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10))
        .danger_accept_invalid_certs(true)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; webhooks disabled");
            return;
        }
    };
    let has_content_type = config.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    while let Some(event) = rx.recv().await {
        let body = event.webhook_json().to_string();
        let kind = event.event_type();
        let mut failures = 0;
        loop {
            let mut req = client.post(config.endpoint.clone()).body(body.clone());
            if !has_content_type {
                req = req.header("Content-Type", "application/json");
            }
            for (k, v) in &config.headers {
                req = req.header(k, v);
            }
            let outcome = match req.send().await {
                Ok(r) if r.status().is_success() => Outcome::Delivered,
                Ok(r) if r.status().is_server_error() => Outcome::Retry(format!("status {}", r.status())),
                Ok(r) => Outcome::Refused(r.status().as_u16()),
                Err(e) => Outcome::Retry(e.to_string()),
            };
            match outcome {
                Outcome::Delivered => break,
                Outcome::Refused(status) => {
                    tracing::warn!(event = %kind, status, "webhook endpoint refused the event");
                    break;
                }
                Outcome::Retry(why) => {
                    failures += 1;
                    match schedule.after_failures(failures) {
                        Some(wait) => {
                            tracing::debug!(event = %kind, failures, %why, "webhook post failed; retrying");
                            tokio::time::sleep(wait).await;
                        }
                        None => {
                            tracing::warn!(event = %kind, failures, %why, "webhook post failed; event dropped");
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_attempts_with_doubling_waits() {
        let s = RetrySchedule::default();
        assert_eq!(s.after_failures(1), Some(Duration::from_millis(200)));
        assert_eq!(s.after_failures(4), Some(Duration::from_millis(1600)));
        assert_eq!(s.after_failures(5), None);
    }
}
