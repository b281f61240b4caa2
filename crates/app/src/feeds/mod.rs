//! What leaves Autolog as it happens: alerts and their push to subscribers (`alerts`),
//! webhook delivery with retries (`webhooks`), and the NATS JetStream outbox (`outbox`).

pub(crate) mod alerts;
pub(crate) mod backlog;
pub(crate) mod outbox;
pub(crate) mod webhooks;
pub(crate) mod witness;
