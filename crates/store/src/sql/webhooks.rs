//! Webhook registrations and their deliveries, for every [`SqlDb`] backend.

use async_trait::async_trait;
use autolog_domain::{Instant, Uuid};

use super::{first, placeholders, SqlDb, SqlRow, SqlTx, Statement};
use crate::{
    check_delivery_attempt, duplicate_webhook, stored_position, unknown_delivery, unknown_webhook,
    DeliveryAttempt, DeliveryAttemptRow, DeliveryStatus, StoreError, Webhook, WebhookDelivery,
    WebhookDeliveryRow, WebhookRow, WebhookStore, DELIVERY_ATTEMPT_UPDATE, WEBHOOK_CURSOR_ADVANCE,
};

/// Deliveries queued per multi-row statement (six values each): well under both engines'
/// limits on bound values.
const DELIVERIES_PER_STATEMENT: usize = 500;

/// The `webhook_deliveries` columns, read from the table aliased `d`.
const DELIVERY_COLUMNS: &str = "d.webhook_id AS webhook_id, d.alert_event_id AS alert_event_id, \
     d.position AS position, d.status AS status, d.attempts AS attempts, \
     d.next_attempt_at_us AS next_attempt_at_us, d.last_attempt_at_us AS last_attempt_at_us, \
     d.last_result AS last_result, d.delivered_at_us AS delivered_at_us";

fn webhook(r: &impl SqlRow) -> Result<Webhook, StoreError> {
    WebhookRow {
        webhook_id: r.text("webhook_id")?,
        url: r.text("url")?,
        secret: r.text("secret")?,
        created_at_us: r.int("created_at_us")?,
        created_by: r.text("created_by")?,
        active: r.boolean("active")?,
        cursor_position: r.int("cursor_position")?,
    }
    .into_webhook()
}

fn delivery(r: &impl SqlRow) -> Result<WebhookDelivery, StoreError> {
    WebhookDeliveryRow {
        webhook_id: r.text("webhook_id")?,
        alert_event_id: r.text("alert_event_id")?,
        position: r.int("position")?,
        status: r.text("status")?,
        attempts: r.int("attempts")?,
        next_attempt_at_us: r.int("next_attempt_at_us")?,
        last_attempt_at_us: r.opt_int("last_attempt_at_us")?,
        last_result: r.opt_text("last_result")?,
        delivered_at_us: r.opt_int("delivered_at_us")?,
    }
    .into_delivery()
}

fn attempt(r: &impl SqlRow) -> Result<DeliveryAttempt, StoreError> {
    DeliveryAttemptRow {
        attempt: r.int("attempt")?,
        at_us: r.int("at_us")?,
        ok: r.boolean("ok")?,
        detail: r.text("detail")?,
    }
    .into_attempt()
}

/// One multi-row insert of pending deliveries for `webhook_id`, due at `at`.
fn queue_deliveries(webhook_id: Uuid, alerts: &[(Uuid, i64)], at: Instant) -> Statement {
    let rows: Vec<String> = (0..alerts.len())
        .map(|i| placeholders(1 + 6 * i, 6))
        .collect();
    let mut insert = Statement::new(format!(
        "INSERT INTO webhook_deliveries (webhook_id, alert_event_id, position, status, \
         attempts, next_attempt_at_us) VALUES {} \
         ON CONFLICT (webhook_id, alert_event_id) DO NOTHING",
        rows.join(", ")
    ));
    for (alert, position) in alerts {
        insert = insert
            .bind(webhook_id)
            .bind(*alert)
            .bind(*position)
            .bind(DeliveryStatus::Pending.as_str())
            .bind(0_i64)
            .bind(at.micros());
    }
    insert
}

#[async_trait]
impl<B: SqlDb> WebhookStore for B {
    async fn add_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        let cursor = stored_position("cursor_position", w.cursor_position)?;
        let insert = Statement::new(
            "INSERT INTO webhooks (webhook_id, url, secret, created_at_us, created_by, active, \
             deactivated_at_us, cursor_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (webhook_id) DO NOTHING",
        )
        .bind(w.webhook_id)
        .bind(&w.url)
        .bind(&w.secret)
        .bind(w.created_at.micros())
        .bind(&w.created_by)
        .bind(w.active)
        .bind((!w.active).then(|| w.created_at.micros()))
        .bind(cursor);
        match self.write(insert).await? {
            0 => Err(duplicate_webhook(w.webhook_id)),
            _ => Ok(()),
        }
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let select = Statement::new(
            "SELECT webhook_id, url, secret, created_at_us, created_by, active, cursor_position \
             FROM webhooks ORDER BY created_at_us, webhook_id",
        );
        self.read(select).await?.iter().map(webhook).collect()
    }

    async fn deactivate_webhook(&self, webhook_id: Uuid, at: Instant) -> Result<bool, StoreError> {
        let update = Statement::new(
            "UPDATE webhooks SET active = FALSE, \
             deactivated_at_us = COALESCE(deactivated_at_us, $1) WHERE webhook_id = $2",
        )
        .bind(at.micros())
        .bind(webhook_id);
        Ok(self.write(update).await? > 0)
    }

    async fn enqueue_deliveries(
        &self,
        webhook_id: Uuid,
        alerts: &[(Uuid, u64)],
        new_cursor: u64,
        at: Instant,
    ) -> Result<(), StoreError> {
        let new_cursor = stored_position("new_cursor", new_cursor)?;
        let alerts = alerts
            .iter()
            .enumerate()
            .map(|(i, (id, position))| {
                Ok((
                    *id,
                    stored_position(&format!("alerts[{i}].position"), *position)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut tx = self.begin().await?;
        let advance = Statement::new(WEBHOOK_CURSOR_ADVANCE)
            .bind(webhook_id)
            .bind(new_cursor);
        if tx.execute(advance).await? == 0 {
            return Err(unknown_webhook(webhook_id));
        }
        for chunk in alerts.chunks(DELIVERIES_PER_STATEMENT) {
            tx.execute(queue_deliveries(webhook_id, chunk, at)).await?;
        }
        tx.commit().await
    }

    async fn due_deliveries(
        &self,
        now: Instant,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
             JOIN webhooks w ON w.webhook_id = d.webhook_id \
             WHERE w.active AND d.status = 'pending' AND d.next_attempt_at_us <= $1 \
             ORDER BY d.position, d.webhook_id LIMIT $2"
        ))
        .bind(now.micros())
        .bind(i64::from(limit));
        self.read(select).await?.iter().map(delivery).collect()
    }

    async fn record_delivery_attempt(
        &self,
        webhook_id: Uuid,
        alert_event_id: Uuid,
        at: Instant,
        ok: bool,
        detail: &str,
        next_attempt_at: Option<Instant>,
    ) -> Result<(), StoreError> {
        check_delivery_attempt(ok, next_attempt_at)?;
        let mut tx = self.begin().await?;
        let update = Statement::new(DELIVERY_ATTEMPT_UPDATE)
            .bind(webhook_id)
            .bind(alert_event_id)
            .bind(at.micros())
            .bind(detail)
            .bind(ok)
            .bind(next_attempt_at.map(Instant::micros));
        let Some(row) = first(tx.rows(update).await?) else {
            return Err(unknown_delivery(alert_event_id));
        };
        let log = Statement::new(
            "INSERT INTO webhook_delivery_attempts \
             (webhook_id, alert_event_id, attempt, at_us, ok, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(webhook_id)
        .bind(alert_event_id)
        .bind(row.int("attempts")?)
        .bind(at.micros())
        .bind(ok)
        .bind(detail);
        tx.execute(log).await?;
        tx.commit().await
    }

    async fn webhook_deliveries(
        &self,
        webhook_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook_id = $1 \
             ORDER BY d.position, d.alert_event_id LIMIT $2"
        ))
        .bind(webhook_id)
        .bind(i64::from(limit));
        self.read(select).await?.iter().map(delivery).collect()
    }

    async fn pending_deliveries(&self) -> Result<u64, StoreError> {
        let count = Statement::new(
            "SELECT COUNT(*) AS pending FROM webhook_deliveries d \
             JOIN webhooks w ON w.webhook_id = d.webhook_id \
             WHERE w.active AND d.status = 'pending'",
        );
        let pending = match first(self.read(count).await?) {
            Some(row) => row.int("pending")?,
            None => 0,
        };
        Ok(u64::try_from(pending).unwrap_or_default())
    }

    async fn delivery_attempts(
        &self,
        webhook_id: Uuid,
        alert_event_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let select = Statement::new(
            "SELECT attempt, at_us, ok, detail FROM webhook_delivery_attempts \
             WHERE webhook_id = $1 AND alert_event_id = $2 ORDER BY attempt",
        )
        .bind(webhook_id)
        .bind(alert_event_id);
        self.read(select).await?.iter().map(attempt).collect()
    }
}
