//! The registry's table of jobs: `Entries`, each `Entry` with its spec and
//! where its state is held (`Held`: its actor's outbox, or `Packed` while
//! the job is passive, with its spec), and removing and packing entries.

use super::outbox::Outbox;
use super::packed_spec::{SpecWire, SpecWireRef};
use super::{RegistryState, TARGET};
use crate::id::JobId;
use crate::kept::KeptHistory;
use crate::spec::JobSpec;
use crate::status::{phase_of, JobState};
use std::sync::Arc;

pub(super) struct Entry {
    /// The job's id (the table's key).
    pub(super) id: JobId,
    /// The job's spec; `None` only while the job is packed, its spec then
    /// in the packed bytes (see [`Entry::spec`]).
    spec: Option<Arc<JobSpec>>,
    /// Holds the job's state: its actor's outbox once the actor posted, or
    /// packed while the job is passive.
    pub(super) held: Held,
    pub(super) orphaned: bool,
}

/// Where the registry holds a job's state.
pub(super) enum Held {
    /// In an outbox: the one its actor posts to (or did, last).
    Outbox(Arc<Outbox>),
    /// Packed: the job is passive and no actor holds its outbox.
    Packed(Packed),
}

// The packed bytes' pointer and length leave room for the outbox's pointer
// (no tag), and an entry stays at 48 bytes on 64-bit targets: with a
// million jobs the table has about 2 million buckets.
const _: () = assert!(std::mem::size_of::<Held>() == std::mem::size_of::<Box<[u8]>>());
const _: () = assert!(std::mem::size_of::<Entry>() <= 48);

/// A passive job, encoded in one allocation (about 150 bytes instead of an
/// outbox of about 600 and a spec of about 500): its phase when packed (a
/// packed job does not change; metrics read it without decoding the rest),
/// its `JobState`, its history with the private in-memory store, and its
/// spec but the id ([`SpecWire`]); postcard, one after the other.
pub(super) struct Packed(Box<[u8]>);

impl Packed {
    fn new(
        phase: crate::status::JobPhase,
        state: &JobState,
        history: &KeptHistory,
        spec: &SpecWireRef<'_>,
    ) -> Option<Self> {
        let value = (phase, state, history, spec);
        // Through a buffer on the stack: one allocation of the exact size
        // (a vector grown from empty took about six); a job with a long
        // history kept in memory takes the vector.
        let mut buf = [0u8; 1024];
        let bytes = match postcard::to_slice(&value, &mut buf) {
            Ok(used) => Box::from(&*used),
            Err(_) => postcard::to_allocvec(&value).ok()?.into_boxed_slice(),
        };
        Some(Self(bytes))
    }

    pub(super) fn phase(&self, id: &JobId) -> crate::status::JobPhase {
        postcard::take_from_bytes(&self.0).map_or_else(
            |e| {
                // Never happens: the bytes were encoded by this process.
                tracing::error!(target: TARGET, job_id = %id, error = %e, "packed job phase does not decode");
                crate::status::JobPhase::Scheduled
            },
            |(phase, _)| phase,
        )
    }

    pub(super) fn decode(&self, id: &JobId) -> JobState {
        self.read::<(crate::status::JobPhase, JobState)>(id)
            .map(|(_, state)| state)
            .unwrap_or_default()
    }

    /// The state and the history.
    fn unpack(&self, id: &JobId) -> (JobState, KeptHistory) {
        self.read::<(crate::status::JobPhase, JobState, KeptHistory)>(id)
            .map(|(_, state, history)| (state, history))
            .unwrap_or_default()
    }

    pub(super) fn history(&self, id: &JobId) -> KeptHistory {
        self.unpack(id).1
    }

    /// The spec of job `id`, `None` if it does not decode (never: the
    /// bytes were encoded by this process, and the error is logged).
    fn spec(&self, id: &JobId) -> Option<JobSpec> {
        let (_, _, _, wire) =
            self.read::<(crate::status::JobPhase, JobState, KeptHistory, SpecWire)>(id)?;
        wire.into_spec(id.clone())
            .map_err(|e| {
                tracing::error!(target: TARGET, job_id = %id, error = %e, "packed job spec does not decode");
            })
            .ok()
    }

    fn read<T: serde::de::DeserializeOwned>(&self, id: &JobId) -> Option<T> {
        match postcard::take_from_bytes(&self.0) {
            Ok((value, _)) => Some(value),
            Err(e) => {
                // Never happens: the bytes were encoded by this process.
                tracing::error!(target: TARGET, job_id = %id, error = %e, "packed job state does not decode");
                None
            }
        }
    }
}

impl Held {
    /// The job's kept history, as the job leaves this holder (replaced or
    /// removed): a packed job is decoded once, and its counters leave
    /// `packed_totals`.
    pub(super) fn into_history(
        self,
        id: &JobId,
        packed_totals: &mut crate::status::Counters,
    ) -> KeptHistory {
        match self {
            Held::Outbox(outbox) => std::mem::take(&mut outbox.lock().history),
            Held::Packed(p) => {
                let (state, history) = p.unpack(id);
                packed_totals.sub(&state.counters);
                history
            }
        }
    }
}

impl Entry {
    pub(super) fn new(spec: Arc<JobSpec>, outbox: Arc<Outbox>, orphaned: bool) -> Self {
        Self {
            id: spec.id.clone(),
            spec: Some(spec),
            held: Held::Outbox(outbox),
            orphaned,
        }
    }

    /// The job's spec: shared while the job is unpacked, decoded from the
    /// packed bytes while it is passive. `None` only if those bytes do not
    /// decode (never: they were encoded by this process; the error is
    /// logged), which the callers answer as for a job they do not know.
    pub(super) fn spec(&self) -> Option<Arc<JobSpec>> {
        match (&self.spec, &self.held) {
            (Some(spec), _) => Some(spec.clone()),
            (None, Held::Packed(p)) => p.spec(&self.id).map(Arc::new),
            (None, Held::Outbox(_)) => None,
        }
    }

    /// The job's spec, as [`Entry::spec`], kept unpacked from now on: for
    /// an actor about to be spawned for the job, which then shares it with
    /// the entry instead of holding a second copy.
    pub(super) fn spec_to_share(&mut self) -> Option<Arc<JobSpec>> {
        self.unpack_spec();
        self.spec.clone()
    }

    /// Decodes a packed job's spec into `spec`, if it is not there.
    fn unpack_spec(&mut self) {
        if self.spec.is_none() {
            self.spec = self.spec();
        }
    }

    /// Drops the spec kept beside the packed bytes once nobody else holds
    /// it: `Some(false)` while an actor still shares it (try again).
    fn release_spec(&mut self) -> Option<bool> {
        if self
            .spec
            .as_ref()
            .is_some_and(|spec| Arc::strong_count(spec) > 1)
        {
            return Some(false);
        }
        self.spec = None;
        Some(true)
    }

    /// Makes `outbox` the job's holder (its actor, new after a restart or a
    /// wake-up, posts for the first time), giving back the history the old
    /// holder kept; a packed job's spec is unpacked first.
    pub(super) fn hold(
        &mut self,
        outbox: Arc<Outbox>,
        packed_totals: &mut crate::status::Counters,
    ) -> KeptHistory {
        self.unpack_spec();
        let old = std::mem::replace(&mut self.held, Held::Outbox(outbox));
        old.into_history(&self.id, packed_totals)
    }

    /// Replaces the job's spec (an upsert, posted by its actor).
    pub(super) fn set_spec(&mut self, spec: Arc<JobSpec>) {
        self.spec = Some(spec);
    }

    /// A copy of the job's state.
    pub(super) fn state(&self) -> JobState {
        match &self.held {
            Held::Outbox(outbox) => outbox.state(),
            Held::Packed(p) => p.decode(&self.id),
        }
    }

    /// The job's outbox, unpacking a packed job into a new one
    /// (`packed_totals` loses its counters) and its spec.
    pub(super) fn outbox(&mut self, packed_totals: &mut crate::status::Counters) -> &Arc<Outbox> {
        self.unpack_spec();
        if let Held::Packed(p) = &self.held {
            let (state, history) = p.unpack(&self.id);
            packed_totals.sub(&state.counters);
            let outbox = Outbox::new(self.id.clone(), state);
            outbox.lock().history = history;
            self.held = Held::Outbox(outbox);
        }
        match &self.held {
            Held::Outbox(outbox) => outbox,
            Held::Packed(_) => unreachable!("unpacked above"),
        }
    }

    /// Packs a passive job whose outbox nobody else holds and that has
    /// nothing waiting in it; `Some(false)` if its outbox is still held
    /// (its actor is stopping: try again), `None` if there is nothing to do.
    /// A job still packed (woken, its actor posted nothing) drops the spec
    /// it unpacked for its actor once the actor let go of it; a job packed
    /// while its spec is shared (woken again meanwhile) keeps it until then.
    fn pack(&mut self, packed_totals: &mut crate::status::Counters) -> Option<bool> {
        let outbox = match &self.held {
            Held::Outbox(outbox) => outbox,
            // Woken without a post: nothing to pack but its spec.
            Held::Packed(_) => return self.spec.is_some().then(|| self.release_spec())?,
        };
        if Arc::strong_count(outbox) > 1 {
            return Some(false);
        }
        let slot = outbox.lock();
        if slot.queued || !slot.acks.is_empty() || !slot.records.is_empty() || slot.spec.is_some() {
            return Some(false);
        }
        // Packed only when idle: nothing in flight, so no fire ahead.
        let phase = phase_of(&slot.state, self.orphaned, &Default::default());
        let spec = SpecWireRef::of(self.spec.as_deref()?).ok()?;
        let packed = Packed::new(phase, &slot.state, &slot.history, &spec)?;
        packed_totals.add(&slot.state.counters);
        drop(slot);
        self.held = Held::Packed(packed);
        // Woken again before it was packed, its new actor shares the spec
        // (its first post keeps it): dropped once unshared.
        self.release_spec()
    }
}

/// The registry's jobs, found by their id: a hash table of entries that
/// hold their id (a map keyed by id would hold it twice; with a million
/// jobs, about 2 million buckets).
#[derive(Default)]
pub(super) struct Entries {
    table: hashbrown::HashTable<Entry>,
    hasher: foldhash::fast::RandomState,
}

impl Entries {
    fn hash(&self, id: &JobId) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, id)
    }

    pub(super) fn get(&self, id: &JobId) -> Option<&Entry> {
        self.table.find(self.hash(id), |e| e.id == *id)
    }

    pub(super) fn get_mut(&mut self, id: &JobId) -> Option<&mut Entry> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |e| e.id == *id)
    }

    pub(super) fn contains_key(&self, id: &JobId) -> bool {
        self.get(id).is_some()
    }

    /// Inserts `entry` under its id, replacing (and giving back) the
    /// entry of that id.
    pub(super) fn insert(&mut self, entry: Entry) -> Option<Entry> {
        let hash = self.hash(&entry.id);
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |e| e.id == entry.id,
            |e| std::hash::BuildHasher::hash_one(hasher, &e.id),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                Some(std::mem::replace(o.get_mut(), entry))
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(entry);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, id: &JobId) -> Option<Entry> {
        let hash = self.hash(id);
        let found = self.table.find_entry(hash, |e| e.id == *id).ok()?;
        Some(found.remove().0)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &JobId> {
        self.table.iter().map(|e| &e.id)
    }
}

impl RegistryState {
    /// Removes a job's entry, taking a packed job's counters out of the
    /// packed totals.
    pub(super) fn remove_entry(&mut self, id: &JobId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if let Held::Packed(p) = &entry.held {
            let state = p.decode(id);
            self.packed_totals.sub(&state.counters);
        }
        Some(entry)
    }

    /// Packs the passivated jobs whose actor has let go of the outbox; the
    /// others are tried again at the next drain (an actor stops moments
    /// after it reports its passivation).
    pub(super) fn pack_passivated(&mut self) {
        if self.to_pack.is_empty() {
            return;
        }
        let mut to_pack = std::mem::take(&mut self.to_pack);
        to_pack.retain(|id| {
            // A job that was removed, or woke and posted from a new actor,
            // has nothing to pack.
            let Some(entry) = self.entries.get_mut(id) else {
                return false;
            };
            matches!(entry.pack(&mut self.packed_totals), Some(false))
        });
        // A job whose old outbox stays held (its actor woke again) is
        // dropped from the list after a few drains.
        if to_pack.len() > 4 * 1024 {
            to_pack.drain(..to_pack.len() - 4 * 1024);
        }
        self.to_pack = to_pack;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleSpec;

    /// A job woken by a message that changes nothing (a preview: its new
    /// actor posts nothing) and passivated again is packed again, its spec
    /// with it: the spec unpacked for the woken actor is not kept once the
    /// actor let go of it ("the spec while the job is live").
    #[test]
    fn a_job_woken_without_a_post_packs_its_spec_again_once_passive() {
        let spec = JobSpec::builder("job-1", ScheduleSpec::cron("0 0 * * * *"), "tick")
            .build()
            .expect("spec");
        let outbox = Outbox::new(spec.id.clone(), JobState::default());
        let mut entry = Entry::new(Arc::new(spec.clone()), outbox, false);
        let mut totals = crate::status::Counters::default();
        assert_eq!(entry.pack(&mut totals), Some(true));
        assert!(entry.spec.is_none(), "packed with its state");

        // Woken: the actor shares the spec with the entry.
        let actor = entry.spec_to_share().expect("spec");
        assert_eq!(*actor, spec);
        assert!(Arc::ptr_eq(&actor, &entry.spec().expect("spec")));
        // Passivated again while the actor still holds it: try again.
        assert_eq!(entry.pack(&mut totals), Some(false));
        assert!(entry.spec.is_some());

        // The actor stopped: the spec is in the packed bytes only.
        drop(actor);
        assert_eq!(entry.pack(&mut totals), Some(true));
        assert!(entry.spec.is_none(), "the decoded spec is dropped");
        assert_eq!(entry.spec().as_deref(), Some(&spec));
        assert!(matches!(entry.held, Held::Packed(_)));
    }

    /// A job woken again before the registry packed it (an operation racing
    /// its passivation: the wake-up's snapshot shares the entry's spec)
    /// keeps sharing one spec with its new actor: the packing does not drop
    /// the entry's copy while the actor holds it, and the actor's first post
    /// does not decode a second one.
    #[test]
    fn a_job_woken_before_it_is_packed_shares_its_spec_with_its_new_actor() {
        let spec = JobSpec::builder("job-1", ScheduleSpec::cron("0 0 * * * *"), "tick")
            .build()
            .expect("spec");
        let old = Outbox::new(spec.id.clone(), JobState::default());
        let mut entry = Entry::new(Arc::new(spec.clone()), old, false);
        let mut totals = crate::status::Counters::default();
        // The wake-up's snapshot, then the packing of the old outbox.
        let actor = entry.spec_to_share().expect("spec");
        assert_eq!(entry.pack(&mut totals), Some(false), "tried again");
        assert!(matches!(entry.held, Held::Packed(_)));
        // The new actor posts for the first time.
        let _ = entry.hold(
            Outbox::new(spec.id.clone(), JobState::default()),
            &mut totals,
        );
        let held = entry.spec().expect("spec");
        assert!(Arc::ptr_eq(&actor, &held), "one spec, shared");
        assert_eq!(*held, spec);
    }
}
