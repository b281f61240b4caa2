//! COI sequences, unmapped codes and outbox cursors, for every [`SqlDb`] backend.

use async_trait::async_trait;
use autolog_domain::Instant;

use super::{first, SqlDb, SqlRow, Statement};
use crate::outbox::{check_outbox_name, OUTBOX_CURSOR_ADVANCE};
use crate::row::unreadable;
use crate::{
    stored_position, unmapped_code, CodeStore, OutboxStore, StoreError, UnmappedCode,
    COI_SEQUENCE_NEXT, UNMAPPED_CODE_UPSERT,
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
        self.write(upsert).await.map(drop)
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
