//! COI sequences, unmapped codes and outbox cursors, for every [`SqlDb`] backend.

use async_trait::async_trait;
use autolog_domain::Instant;

use super::{first, SqlDb, SqlRow, SqlTx, Statement};
use crate::outbox::{check_outbox_name, OUTBOX_CURSOR_ADVANCE};
use crate::row::unreadable;
use crate::{
    stored_position, unmapped_code, CodeStore, OutboxStore, StoreError, UnmappedCode, UnmappedWeek,
    COI_SEQUENCE_NEXT, UNMAPPED_CODE_UPSERT, UNMAPPED_WEEK_UPSERT,
};

fn unmapped(r: &impl SqlRow) -> Result<UnmappedCode, StoreError> {
    unmapped_code(
        r.text("system")?,
        r.text("kind")?,
        r.text("code")?,
        r.int("seen_count")?,
        r.int("first_seen_us")?,
        r.int("last_seen_us")?,
    )
}

#[async_trait]
impl<B: SqlDb> CodeStore for B {
    async fn record_unmapped_code(
        &self,
        system: &str,
        kind: &str,
        code: &str,
        seen_at: Instant,
    ) -> Result<(), StoreError> {
        let upsert = Statement::new(UNMAPPED_CODE_UPSERT)
            .bind(system)
            .bind(kind)
            .bind(code)
            .bind(seen_at.micros());
        let week = Statement::new(UNMAPPED_WEEK_UPSERT)
            .bind(system)
            .bind(kind)
            .bind(seen_at.week_start().micros());
        let mut tx = self.begin().await?;
        tx.execute(upsert).await?;
        tx.execute(week).await?;
        tx.commit().await
    }

    async fn next_coi_sequence(&self, fin: &str, year: u16) -> Result<u64, StoreError> {
        let next = Statement::new(COI_SEQUENCE_NEXT)
            .bind(fin)
            .bind(i64::from(year));
        let key = format!("({fin}, {year})");
        let Some(row) = first(self.write_returning(next).await?) else {
            return Err(unreadable(
                "coi_sequences",
                &key,
                "no number returned".into(),
            ));
        };
        let last = row.int("last_seq")?;
        u64::try_from(last)
            .map_err(|_| unreadable("coi_sequences", &key, format!("negative number {last}")))
    }

    async fn unmapped_codes(&self) -> Result<Vec<UnmappedCode>, StoreError> {
        let d = self.dialect();
        let select = Statement::new(format!(
            "SELECT system, kind, code, seen_count, first_seen_us, last_seen_us \
             FROM unmapped_codes ORDER BY {}, {}, {}",
            d.bytewise("system"),
            d.bytewise("kind"),
            d.bytewise("code")
        ));
        self.read(select).await?.iter().map(unmapped).collect()
    }

    async fn unmapped_code_weeks(
        &self,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<UnmappedWeek>, StoreError> {
        let d = self.dialect();
        let select = Statement::new(format!(
            "SELECT system, kind, week_start_us, seen_count FROM unmapped_code_weeks \
             WHERE week_start_us >= $1 AND week_start_us < $2 ORDER BY week_start_us, {}, {}",
            d.bytewise("system"),
            d.bytewise("kind"),
        ))
        .bind(from_us)
        .bind(to_us);
        self.read(select).await?.iter().map(unmapped_week).collect()
    }
}

fn unmapped_week(r: &impl SqlRow) -> Result<UnmappedWeek, StoreError> {
    let system = r.text("system")?;
    let count = r.int("seen_count")?;
    Ok(UnmappedWeek {
        kind: r.text("kind")?,
        week_start_us: r.int("week_start_us")?,
        count: u64::try_from(count).map_err(|_| {
            unreadable(
                "unmapped_code_weeks",
                &system,
                format!("seen_count {count}"),
            )
        })?,
        system,
    })
}

#[async_trait]
impl<B: SqlDb> OutboxStore for B {
    async fn outbox_cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        check_outbox_name(name)?;
        let select =
            Statement::new("SELECT position FROM outbox_cursors WHERE name = $1").bind(name);
        let Some(row) = first(self.read(select).await?) else {
            return Ok(None);
        };
        let position = row.int("position")?;
        u64::try_from(position).map(Some).map_err(|_| {
            unreadable(
                "outbox_cursors",
                name,
                format!("negative position {position}"),
            )
        })
    }

    async fn set_outbox_cursor(&self, name: &str, position: u64) -> Result<(), StoreError> {
        check_outbox_name(name)?;
        let stored = stored_position("position", position)?;
        let advance = Statement::new(OUTBOX_CURSOR_ADVANCE)
            .bind(name)
            .bind(stored);
        self.write(advance).await.map(drop)
    }
}
