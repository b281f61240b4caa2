//! The errors of Autolog's use cases, each mapping to one kind of answer:
//! refused input, not found, storage failure, integrity failure.

use autolog_domain::FieldError;
use autolog_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request breaks a rule; nothing was written.
    #[error("refused: {0}")]
    Invalid(FieldError),
    /// A decision refused: every condition it does not meet (nothing was written).
    #[error("refused: {} condition(s) unmet: {}", .0.len(), .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "))]
    Unmet(Vec<FieldError>),
    /// The request is too large.
    #[error("refused: {0}")]
    TooLarge(FieldError),
    /// The request carries no valid credentials (or they expired, were revoked, or the
    /// account is locked): say why, never which part was wrong beyond that.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The authenticated person or system may not do this (role, site or scope).
    #[error("forbidden: {0}")]
    Forbidden(FieldError),
    /// The request collides with what another sender recorded (e.g. a source id already
    /// used by someone else); nothing was written and the other record is not shown.
    #[error("conflict: {0}")]
    Conflict(FieldError),
    /// Too many requests from one client.
    #[error("refused: {0}")]
    RateLimited(FieldError),
    /// The record existed and was erased (crypto-shredded): it cannot come back.
    #[error("gone: {0}")]
    Gone(FieldError),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The data directory or configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Storage(String),
    /// The store cannot take the request now (its append queue is full); nothing was
    /// written, and the same request may be sent again after a short wait.
    #[error("{0}")]
    Busy(String),
    /// Stored data is not what Autolog wrote.
    #[error("integrity: {0}")]
    Integrity(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(field) => AppError::Invalid(field),
            StoreError::Conflict(field) => AppError::Conflict(field),
            StoreError::Backend { .. } => AppError::Storage(e.to_string()),
            StoreError::Busy { .. } => AppError::Busy(e.to_string()),
            StoreError::Corrupt { .. } => AppError::Integrity(e.to_string()),
        }
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        AppError::Invalid(e)
    }
}
