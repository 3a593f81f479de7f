//! Categories (being written).
