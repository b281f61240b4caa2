//! The cursors of outbound feeds (publication to NATS JetStream): how far each feed has
//! published the ledger, by position. Kept beside the ledger, never hashed into an event.

use autolog_domain::FieldError;

use crate::StoreError;

/// The longest feed name.
pub const MAX_OUTBOX_NAME: usize = 200;

/// The upsert both backends run to move a feed's cursor forward (`$1` name, `$2`
/// position): it never moves back, so servers publishing the same feed cannot undo each
/// other's progress.
pub const OUTBOX_CURSOR_ADVANCE: &str = "INSERT INTO outbox_cursors (name, position) \
     VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET position = CASE \
     WHEN excluded.position > outbox_cursors.position THEN excluded.position \
     ELSE outbox_cursors.position END";

/// A feed name is 1 to [`MAX_OUTBOX_NAME`] printable ASCII characters without spaces.
pub fn check_outbox_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name.len() > MAX_OUTBOX_NAME
        || !name.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(StoreError::Rejected(FieldError::new(
            "name",
            name.chars().take(MAX_OUTBOX_NAME).collect::<String>(),
            format!("must be 1 to {MAX_OUTBOX_NAME} printable ASCII characters without spaces"),
        )));
    }
    Ok(())
}
