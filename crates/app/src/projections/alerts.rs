//! The alert projection: each alert's chain, site and status in one row, kept from the
//! ledger by a cursor (as the chain projection is), so that a chain's or a site's alerts
//! are found without reading every alert's stream. A listing first brings it up to the
//! ledger's head (a caller sees its own alerts), then reads the matching alerts' streams:
//! what it answers is still folded from the ledger, the projection only says where to
//! look. `autolog verify` compares it with the fold; `projections rebuild` makes it again.

use std::collections::BTreeMap;

use autolog_domain::StreamId;
use autolog_store::{AlertIndexQuery, AlertIndexRow};

use crate::feeds::alerts::Alert;
use crate::{AppError, Autolog};

fn row_of(alert: &Alert) -> AlertIndexRow {
    AlertIndexRow {
        alert_id: alert.raised.alert_id.clone(),
        coi: alert.raised.coi.clone(),
        site_id: alert.raised.site_id.clone(),
        status: alert.status.as_str().to_string(),
        raised_position: alert.position,
    }
}

impl Autolog {
    /// Brings the alert projection up to the ledger's head; the position it reached.
    pub async fn project_alerts(&self) -> Result<u64, AppError> {
        let _one_projector = self.projector.lock().await;
        loop {
            let from = self.store.alert_projection_position().await?;
            let (to, streams) = self.streams_after(from).await?;
            if to == from {
                return Ok(from);
            }
            let mut rows = Vec::new();
            for alert_id in streams.iter().filter_map(|s| s.strip_prefix("alert/")) {
                rows.extend(self.alert_row(alert_id).await?);
            }
            // False when another server moved the position meanwhile: read it again.
            self.store.put_alert_index(&rows, from, to).await?;
        }
    }

    /// One alert's row, folded from its stream (`None`: no alert was raised on it).
    async fn alert_row(&self, alert_id: &str) -> Result<Option<AlertIndexRow>, AppError> {
        match self.alert(alert_id).await {
            Ok(alert) => Ok(Some(row_of(&alert))),
            Err(AppError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The alerts' rows matching `query`, the projection brought up to the head first.
    pub(crate) async fn indexed_alerts(
        &self,
        query: &AlertIndexQuery,
    ) -> Result<Vec<AlertIndexRow>, AppError> {
        self.project_alerts().await?;
        Ok(self.store.alert_index(query).await?)
    }

    /// The alert projection against the fold of every alert stream: each difference, and
    /// how many alerts there are.
    pub(crate) async fn check_alert_projection(&self) -> Result<(u64, Vec<String>), AppError> {
        let stored: BTreeMap<String, AlertIndexRow> = self
            .indexed_alerts(&AlertIndexQuery::default())
            .await?
            .into_iter()
            .map(|row| (row.alert_id.clone(), row))
            .collect();
        let mut differences = Vec::new();
        let mut alerts = 0u64;
        let streams = self.all_streams_with_prefix("alert/").await?;
        for stream in &streams {
            let alert_id = stream.trim_start_matches("alert/");
            let Some(folded) = self.alert_row(alert_id).await? else {
                continue;
            };
            alerts += 1;
            if stored.get(alert_id) != Some(&folded) {
                differences.push(format!(
                    "alert {alert_id}: projected {:?}, folded {folded:?}",
                    stored.get(alert_id)
                ));
            }
        }
        for extra in stored
            .keys()
            .filter(|id| !streams.contains(&StreamId::alert(id).into()))
        {
            differences.push(format!("alert {extra}: projected, but no such alert"));
        }
        Ok((alerts, differences))
    }
}
