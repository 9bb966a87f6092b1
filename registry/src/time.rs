//! Timestamps.

/// Now, as RFC 3339 UTC with milliseconds (`2025-01-31T12:00:00.123Z`).
pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
