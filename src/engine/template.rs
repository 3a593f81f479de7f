//! Layout templates (being written).
