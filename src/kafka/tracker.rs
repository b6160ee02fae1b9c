//! Delivery tracking: the consumed records that the broker has
//! acknowledged, and so the input offsets that may be committed.
//!
//! Acknowledgements can arrive out of consumption order (with
//! `--partitioner key`, records of one input partition go to several
//! output partitions), so an offset is committable only when its record
//! and every earlier record of its partition are acknowledged.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Identifies one assignment of one input partition. A partition that is
/// revoked and assigned again gets a new id, so a late acknowledgement
/// from the earlier assignment is ignored.
pub type PartitionId = u64;

/// The delivery state of one consumed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    InFlight,
    Delivered,
    Failed,
}

/// The records of one input partition that are not yet committable.
#[derive(Debug)]
pub struct PartitionLog {
    /// Input topic.
    pub topic: Arc<str>,
    /// Input partition.
    pub partition: i32,
    /// Consumed records in offset order, from the oldest one that is not
    /// delivered.
    records: VecDeque<(i64, State)>,
    /// One past the last record of the delivered prefix.
    committable: Option<i64>,
    /// The offset of the last successful commit.
    committed: Option<i64>,
    /// Records consumed since the metrics were last published.
    pub consumed: u64,
    /// Records acknowledged since the metrics were last published.
    pub delivered: u64,
}

impl PartitionLog {
    fn new(topic: Arc<str>, partition: i32) -> PartitionLog {
        PartitionLog {
            topic,
            partition,
            records: VecDeque::new(),
            committable: None,
            committed: None,
            consumed: 0,
            delivered: 0,
        }
    }

    fn settle(&mut self) {
        while let Some(&(offset, State::Delivered)) = self.records.front() {
            self.committable = Some(offset + 1);
            self.records.pop_front();
        }
    }

    /// Returns the offset to commit, one past the delivered prefix, or
    /// `None` when nothing was delivered since the last commit.
    pub fn pending_commit(&self) -> Option<i64> {
        match (self.committable, self.committed) {
            (Some(next), Some(done)) if next <= done => None,
            (next, _) => next,
        }
    }

    /// Returns the records consumed and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.records.iter().filter(|(_, s)| *s == State::InFlight).count()
    }
}

/// Delivery state of every assigned input partition.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Partition logs by id; an id is an index, so that a delivery report
    /// finds its partition without hashing.
    logs: Vec<Option<PartitionLog>>,
    ids: HashMap<Arc<str>, HashMap<i32, PartitionId>>,
    in_flight: usize,
    generation: u64,
}

impl Tracker {
    /// Returns an empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Starts tracking a newly assigned partition and returns its id; a
    /// partition already tracked keeps its id.
    pub fn assign(&mut self, topic: &str, partition: i32) -> PartitionId {
        if let Some(id) = self.id(topic, partition) {
            return id;
        }
        let topic: Arc<str> = Arc::from(topic);
        let id = self.logs.len() as PartitionId;
        self.ids.entry(Arc::clone(&topic)).or_default().insert(partition, id);
        self.logs.push(Some(PartitionLog::new(topic, partition)));
        self.generation += 1;
        id
    }

    /// Returns a number that changes whenever a partition is assigned or
    /// revoked, so that a cached id can be checked cheaply.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn log(&self, id: PartitionId) -> Option<&PartitionLog> {
        self.logs.get(id as usize)?.as_ref()
    }

    fn log_mut(&mut self, id: PartitionId) -> Option<&mut PartitionLog> {
        self.logs.get_mut(id as usize)?.as_mut()
    }

    /// Stops tracking a partition and returns what was left of it.
    pub fn revoke(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Option<PartitionLog> {
        let partitions = self.ids.get_mut(topic)?;
        let id = partitions.remove(&partition)?;
        if partitions.is_empty() {
            self.ids.remove(topic);
        }
        let log = self.logs.get_mut(id as usize)?.take()?;
        self.in_flight -= log.in_flight();
        self.generation += 1;
        Some(log)
    }

    /// Returns the id of an assigned partition.
    pub fn id(&self, topic: &str, partition: i32) -> Option<PartitionId> {
        self.ids.get(topic)?.get(&partition).copied()
    }

    /// Returns the topic and partition of a tracked partition id.
    pub fn name(&self, id: PartitionId) -> Option<(Arc<str>, i32)> {
        let log = self.log(id)?;
        Some((Arc::clone(&log.topic), log.partition))
    }

    /// Records that the record at `offset` was consumed and handed to the
    /// producer, and returns the records in flight.
    ///
    /// # Panics
    ///
    /// Panics in debug builds if `offset` is not above every offset
    /// already tracked for the partition.
    pub fn sent(&mut self, id: PartitionId, offset: i64) -> usize {
        let Some(log) =
            self.logs.get_mut(id as usize).and_then(Option::as_mut)
        else {
            return self.in_flight;
        };
        debug_assert!(
            log.records.back().is_none_or(|(last, _)| *last < offset),
            "offsets of a partition must increase"
        );
        log.records.push_back((offset, State::InFlight));
        log.consumed += 1;
        self.in_flight += 1;
        self.in_flight
    }

    /// Records the broker's acknowledgement of the record at `offset`.
    /// Returns false when the partition is no longer tracked or the
    /// record is unknown.
    pub fn delivered(&mut self, id: PartitionId, offset: i64) -> bool {
        self.finish(id, offset, State::Delivered)
    }

    /// Records that the record at `offset` will not be delivered: no
    /// offset at or after it becomes committable. Returns false when the
    /// partition is no longer tracked or the record is unknown.
    pub fn failed(&mut self, id: PartitionId, offset: i64) -> bool {
        self.finish(id, offset, State::Failed)
    }

    fn finish(&mut self, id: PartitionId, offset: i64, state: State) -> bool {
        let Some(log) =
            self.logs.get_mut(id as usize).and_then(Option::as_mut)
        else {
            return false;
        };
        let Ok(index) = log.records.binary_search_by_key(&offset, |r| r.0)
        else {
            return false;
        };
        if log.records[index].1 != State::InFlight {
            return false;
        }
        log.records[index].1 = state;
        if state == State::Delivered {
            log.delivered += 1;
            log.settle();
        }
        self.in_flight -= 1;
        true
    }

    /// Records that offsets up to `offset` (exclusive) were committed.
    pub fn committed(&mut self, topic: &str, partition: i32, offset: i64) {
        let Some(id) = self.id(topic, partition) else {
            return;
        };
        if let Some(log) = self.log_mut(id) {
            log.committed = log.committed.max(Some(offset));
        }
    }

    /// Returns the records consumed and not yet acknowledged, over every
    /// partition.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Returns the tracked partitions.
    pub fn logs(&self) -> impl Iterator<Item = &PartitionLog> {
        self.logs.iter().flatten()
    }

    /// Returns the tracked partitions, to reset their metric counts.
    pub fn logs_mut(&mut self) -> impl Iterator<Item = &mut PartitionLog> {
        self.logs.iter_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(tracker: &Tracker, id: PartitionId) -> Option<i64> {
        tracker.log(id).unwrap().pending_commit()
    }

    #[test]
    fn commit_waits_for_earlier_records() {
        let mut tracker = Tracker::new();
        let id = tracker.assign("logs", 0);
        for offset in [10, 11, 12] {
            tracker.sent(id, offset);
        }
        assert!(tracker.delivered(id, 12));
        assert!(tracker.delivered(id, 11));
        assert_eq!(pending(&tracker, id), None);
        assert!(tracker.delivered(id, 10));
        assert_eq!(pending(&tracker, id), Some(13));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn offset_gaps_are_allowed() {
        let mut tracker = Tracker::new();
        let id = tracker.assign("logs", 0);
        tracker.sent(id, 3);
        tracker.sent(id, 7);
        assert!(tracker.delivered(id, 3));
        assert_eq!(pending(&tracker, id), Some(4));
        assert!(tracker.delivered(id, 7));
        assert_eq!(pending(&tracker, id), Some(8));
    }

    #[test]
    fn failed_record_blocks_commits() {
        let mut tracker = Tracker::new();
        let id = tracker.assign("logs", 0);
        for offset in 0..4 {
            tracker.sent(id, offset);
        }
        assert!(tracker.delivered(id, 0));
        assert!(tracker.failed(id, 1));
        assert!(tracker.delivered(id, 2));
        assert!(tracker.delivered(id, 3));
        assert_eq!(pending(&tracker, id), Some(1));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn committed_offset_is_not_pending() {
        let mut tracker = Tracker::new();
        let id = tracker.assign("logs", 2);
        tracker.sent(id, 0);
        assert!(tracker.delivered(id, 0));
        tracker.committed("logs", 2, 1);
        assert_eq!(pending(&tracker, id), None);
        tracker.sent(id, 1);
        assert!(tracker.delivered(id, 1));
        assert_eq!(pending(&tracker, id), Some(2));
    }

    #[test]
    fn late_ack_after_revoke_ignored() {
        let mut tracker = Tracker::new();
        let old = tracker.assign("logs", 0);
        tracker.sent(old, 5);
        let log = tracker.revoke("logs", 0).unwrap();
        assert_eq!(log.in_flight(), 1);
        assert_eq!(tracker.in_flight(), 0);
        let generation = tracker.generation();
        let new = tracker.assign("logs", 0);
        assert_ne!(old, new);
        assert_ne!(tracker.generation(), generation);
        assert!(!tracker.delivered(old, 5));
        assert_eq!(pending(&tracker, new), None);
    }

    #[test]
    fn duplicate_ack_counted_once() {
        let mut tracker = Tracker::new();
        let id = tracker.assign("logs", 0);
        tracker.sent(id, 0);
        assert!(tracker.delivered(id, 0));
        assert!(!tracker.delivered(id, 0));
        assert!(!tracker.failed(id, 0));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn assign_keeps_existing_id() {
        let mut tracker = Tracker::new();
        let id = tracker.assign("logs", 1);
        tracker.sent(id, 0);
        assert_eq!(tracker.assign("logs", 1), id);
        assert_eq!(tracker.in_flight(), 1);
    }
}
