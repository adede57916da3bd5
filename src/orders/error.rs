//! The domain's own error: what went wrong in terms of orders and DHMAD, not HTTP. The HTTP
//! edge maps each variant to a status (`src/error.rs`).

/// Why an order operation did not happen. `Display` is safe to show to the user who asked;
/// `cause` fields carry the internal detail for the log only.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// No such order, session or product.
    #[error("not found")]
    NotFound,
    /// The request itself is invalid (unknown product, bad e-mail); the text says what.
    #[error("{0}")]
    Invalid(String),
    /// An `Idempotency-Key` came back with a different request than the one it was first used
    /// for.
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    /// The action does not fit the order's state now.
    #[error("{0}")]
    NotAllowed(String),
    /// Another request is creating this order's escrow right now (a double click, a second
    /// tab): its answer is seconds away, and the order then shows it.
    #[error("Your checkout is being prepared. Please try again in a few seconds.")]
    InProgress,
    /// DHMAD refused for a business reason; `message` is its `user_message`, meant for users,
    /// `code` its machine-readable reason.
    #[error("{message}")]
    Refused {
        message: String,
        cause: String,
        code: Option<dhmad::ErrorCode>,
    },
    /// DHMAD is unreachable, busy or did not answer: trying again later may work.
    #[error("{message}")]
    DhmadUnavailable { message: String, cause: String },
    /// DHMAD's call budget is spent for now (our own, or DHMAD answered 429): nothing was
    /// sent for this step, which can be taken again after `retry_after`.
    #[error("The payment provider is busy. Please try again in about {} seconds; {}", .retry_after.as_secs().max(1), SAVED_LOWER)]
    Busy { retry_after: std::time::Duration },
    /// DHMAD no longer knows the order's escrow (404), or refuses to show it (403): asking
    /// again will not help; the merchant must look.
    #[error("{0}")]
    EscrowUnknown(String),
    /// DHMAD failed or answered something unexpected.
    #[error("{message}")]
    DhmadFailed { message: String, cause: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// How long DHMAD's budget is spent for, when that is why a call failed: our gate held it
/// back, or DHMAD answered 429 (which it answers without acting). At most
/// [`crate::budget::LONGEST_PAUSE`]: DHMAD's wait may be an hour, and a job or a buyer told to
/// wait that long would wait past a window that may well reopen sooner. (A create that meets
/// DHMAD's cap on creations is not "busy" but failed: `dhmad::Error::is_creation_cap`.)
pub fn busy_for(err: &dhmad::Error) -> Option<std::time::Duration> {
    use std::time::Duration;
    let wait = match err {
        dhmad::Error::Throttled { retry_after } => *retry_after,
        dhmad::Error::RateLimited { .. } => err.rate_limit_wait().unwrap_or(Duration::from_secs(5)),
        _ => return None,
    };
    Some(wait.min(crate::budget::LONGEST_PAUSE))
}

pub type OrderResult<T> = Result<T, OrderError>;

/// Told for a refusal DHMAD gave no text for.
pub(crate) const REFUSED: &str = "The payment provider refused this step.";

/// Told to the buyer whenever DHMAD fails after we recorded the order.
pub const SAVED: &str = "Your order is saved; please try again in a moment.";
const SAVED_LOWER: &str = "your order is saved.";

impl OrderError {
    pub(crate) fn not_allowed(msg: impl Into<String>) -> Self {
        Self::NotAllowed(msg.into())
    }

    /// The internal detail worth logging (never shown to clients).
    pub fn cause(&self) -> Option<String> {
        match self {
            Self::Refused { cause, .. }
            | Self::DhmadUnavailable { cause, .. }
            | Self::DhmadFailed { cause, .. } => Some(cause.clone()),
            Self::Database(e) => Some(e.to_string()),
            _ => None,
        }
    }

    /// A DHMAD failure, told to the user as `what` failed, classified by whether a retry can
    /// help. The error's own text stays in `cause`.
    pub(crate) fn from_dhmad(err: dhmad::Error, what: &str) -> Self {
        let cause = format!("{what}: {err}");
        if let Some(retry_after) = busy_for(&err) {
            return Self::Busy { retry_after };
        }
        match err {
            dhmad::Error::BusinessRule { api, .. } => Self::Refused {
                code: api.code.clone(),
                message: api.user_message.unwrap_or_else(|| REFUSED.into()),
                cause,
            },
            e if e.is_transient() => Self::DhmadUnavailable {
                message: format!("The payment provider is not answering. {SAVED}"),
                cause,
            },
            _ => Self::DhmadFailed {
                message: format!("The payment provider reported an error. {SAVED}"),
                cause,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::busy_for;

    /// DHMAD's wait may be an hour: a deliver job, the checkout line and a buyer's
    /// `Retry-After` wait a minute at most, then try again.
    #[test]
    fn dhmads_wait_is_kept_to_a_minute_at_most() {
        let hour = dhmad::Error::from_response(
            429,
            br#"{"error":"Too Many Requests","retryAfter":3600}"#,
            None,
        );
        assert_eq!(busy_for(&hour), Some(crate::budget::LONGEST_PAUSE));
        let short = dhmad::Error::from_response(
            429,
            br#"{"error":"Too Many Requests","retryAfter":7}"#,
            None,
        );
        assert_eq!(busy_for(&short), Some(Duration::from_secs(7)));
        let held = dhmad::Error::Throttled {
            retry_after: Duration::from_secs(3600),
        };
        assert_eq!(busy_for(&held), Some(crate::budget::LONGEST_PAUSE));
        assert_eq!(busy_for(&dhmad::Error::Timeout), None);
    }
}
