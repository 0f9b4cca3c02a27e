//! Shared helpers for the flow tests.
