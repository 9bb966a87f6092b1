//! Rust client for the maas HTTP API (grows in its own issue).
