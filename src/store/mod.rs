//! Persistence adapters of the [`SnapshotStore`](cronactor_actors::SnapshotStore)
//! port.
//!
//! [`SledStore`] keeps every job's spec, state and history in a sled database
//! directory, so that a restarted process resumes every job. The layout, the
//! value format and the durability contract are described in
//! `docs/storage.md`.

mod codec;
mod fold;
mod heap;
mod journal;
mod priority;
mod sled_store;

pub use sled_store::{SledStore, SledStoreOptions};

#[cfg(test)]
mod tests;
