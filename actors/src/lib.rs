//! cronactor-actors (being written).
pub mod schedule;
