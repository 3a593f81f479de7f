//! Rooted per-user storage (being written).
