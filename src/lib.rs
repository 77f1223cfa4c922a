//! cronactor (being written).
pub use cronactor_actors::schedule;
