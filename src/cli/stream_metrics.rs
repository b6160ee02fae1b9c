//! The stream filter's metrics: counted per chunk in plain fields, and
//! published to the shared registry once per batch of chunks.

use std::time::{Duration, Instant};

use crate::engine::Stats;
use crate::observe::metrics::{RecordCounters, unix_seconds_now};
use crate::observe::{Metrics, SourceType};

/// Chunks read before their counts are published, unless a read has to
/// wait for input or [`PUBLISH_INTERVAL`] passes first. With 64 KiB reads
/// a batch is at most 1 MiB.
const PUBLISH_CHUNKS: u32 = 16;

/// Maximum time between two publishes while chunks keep arriving.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Counts the filter takes of one chunk, beside the redactor's [`Stats`].
pub(super) struct ChunkCounts {
    /// Newlines in the chunk, or 0 when lines are not counted.
    pub newlines: u64,
    pub last_byte: u8,
    /// Time in the redactor, without the time spent writing to stdout.
    pub scan_time: Duration,
    /// When the scan ended and the write to stdout started.
    pub scan_end: Instant,
    /// Whether the chunk's output was written.
    pub written: bool,
}

/// Counts of the chunks read since the last publish.
#[derive(Default)]
struct Batch {
    chunks: u32,
    lines_read: u64,
    lines_written: u64,
    scan_time: Duration,
}

/// The filter's view of the metrics. The read loop adds each chunk's
/// counts to a [`Batch`], and the batch reaches the shared counters and
/// the scan-time histogram when it is full, after [`PUBLISH_INTERVAL`],
/// before a read waits for input, and at the end of each input. So the
/// counters lag the stream by at most one batch, and an idle input leaves
/// nothing unpublished.
pub(super) struct StreamMetrics {
    pub metrics: Metrics,
    source: SourceType,
    /// Whether lines are counted, and so exported as records.
    count_lines: bool,
    /// The record counters of `source`, when lines are counted.
    records: Option<RecordCounters>,
    /// The redactor's totals at the last publish, less `unwritten`.
    published: Stats,
    /// The redactor's `bytes_out` at the last chunk or end.
    bytes_out_seen: u64,
    /// Bytes the redactor gave to a write that failed: counted in its
    /// `bytes_out`, but not written.
    unwritten: u64,
    batch: Batch,
    last_publish: Instant,
    /// Whether the last byte read was a newline, or nothing was read.
    at_line_start: bool,
    clock: EpochClock,
}

impl StreamMetrics {
    pub fn new(metrics: Metrics, count_lines: bool) -> StreamMetrics {
        StreamMetrics {
            metrics,
            source: SourceType::Stdin,
            count_lines,
            records: None,
            published: Stats::default(),
            bytes_out_seen: 0,
            unwritten: 0,
            batch: Batch::default(),
            last_publish: Instant::now(),
            at_line_start: true,
            clock: EpochClock::now(),
        }
    }

    /// Marks `source` as open and being read. The caller publishes the
    /// counts of the input before it first.
    pub fn start_source(&mut self, source: SourceType) {
        self.source = source;
        if self.count_lines {
            self.records = Some(self.metrics.records(source));
        }
        self.metrics.ready.set(1);
    }

    /// Adds the counts of one chunk, and publishes them when the batch is
    /// due.
    pub fn chunk(&mut self, stats: &Stats, counts: &ChunkCounts) {
        self.track_written(stats, counts.written);
        let batch = &mut self.batch;
        batch.chunks += 1;
        batch.lines_read += counts.newlines;
        if counts.written {
            batch.lines_written += counts.newlines;
        }
        batch.scan_time += counts.scan_time;
        self.at_line_start = counts.last_byte == b'\n';
        let due = batch.chunks >= PUBLISH_CHUNKS
            || counts.scan_end.saturating_duration_since(self.last_publish)
                >= PUBLISH_INTERVAL;
        if due {
            self.publish(stats);
            self.last_publish = counts.scan_end;
        }
    }

    /// Publishes the last counts at the end of input. A last line without
    /// a newline is a record too, and `written` is whether it was written.
    pub fn end(&mut self, stats: &Stats, written: bool) {
        self.track_written(stats, written);
        if !self.at_line_start {
            self.batch.lines_read += 1;
            if written {
                self.batch.lines_written += 1;
            }
        }
        self.publish(stats);
        self.metrics.ready.set(0);
    }

    /// Notes whether the bytes that the redactor gave out since the last
    /// call were written.
    fn track_written(&mut self, stats: &Stats, written: bool) {
        if !written {
            self.unwritten += stats.bytes_out - self.bytes_out_seen;
        }
        self.bytes_out_seen = stats.bytes_out;
    }

    /// Adds the open batch and what the redactor counted since the last
    /// publish to the shared metrics.
    pub fn publish(&mut self, stats: &Stats) {
        let mut now = *stats;
        now.bytes_out -= self.unwritten;
        self.metrics.publish(self.source, &self.published, &now);
        self.published = now;
        let batch = std::mem::take(&mut self.batch);
        if let Some(records) = &self.records {
            records.read.inc_by(batch.lines_read);
            records.written.inc_by(batch.lines_written);
        }
        if batch.chunks > 0 {
            let seconds = batch.scan_time.as_secs_f64();
            self.metrics.scan_duration.observe(seconds);
        }
    }

    /// Sets the stall gauge to `at`, the start of a write to stdout, which
    /// blocks while the reader of stdout reads nothing.
    pub fn write_started(&mut self, at: Instant) {
        let seconds = self.clock.epoch_seconds(at);
        self.metrics.write_start_time.set(seconds);
    }

    pub fn write_ended(&self) {
        self.metrics.output_write_ended();
    }
}

/// Converts monotonic instants to seconds since the Unix epoch without a
/// wall-clock read for each one. The wall clock is read again once a
/// second, so a change of the system time shows within a second.
struct EpochClock {
    /// Seconds since the Unix epoch at `at`.
    seconds: f64,
    at: Instant,
}

impl EpochClock {
    fn now() -> EpochClock {
        EpochClock { seconds: unix_seconds_now(), at: Instant::now() }
    }

    fn epoch_seconds(&mut self, at: Instant) -> f64 {
        let since = at.saturating_duration_since(self.at);
        if since >= Duration::from_secs(1) {
            *self = EpochClock::now();
            return self.seconds;
        }
        self.seconds + since.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(newlines: u64) -> ChunkCounts {
        ChunkCounts {
            newlines,
            last_byte: b'\n',
            scan_time: Duration::from_micros(10),
            scan_end: Instant::now(),
            written: true,
        }
    }

    fn stats(bytes: u64) -> Stats {
        Stats { bytes_in: bytes, bytes_out: bytes, ..Stats::default() }
    }

    fn read_bytes(metrics: &Metrics) -> u64 {
        metrics.source(SourceType::Stdin).read_bytes.get()
    }

    #[test]
    fn full_chunks_wait_for_batch() {
        let metrics = Metrics::new().unwrap();
        let mut stream = StreamMetrics::new(metrics.clone(), true);
        stream.start_source(SourceType::Stdin);
        for chunk in 1..PUBLISH_CHUNKS {
            stream.chunk(&stats(u64::from(chunk) * 100), &counts(2));
        }
        assert_eq!(read_bytes(&metrics), 0, "published before batch full");
        let last = u64::from(PUBLISH_CHUNKS) * 100;
        stream.chunk(&stats(last), &counts(2));
        assert_eq!(read_bytes(&metrics), last);
        let records = metrics.records(SourceType::Stdin);
        assert_eq!(records.read.get(), 2 * u64::from(PUBLISH_CHUNKS));
        assert_eq!(metrics.scan_duration.get_sample_count(), 1);
    }

    #[test]
    fn chunk_after_interval_publishes() {
        let metrics = Metrics::new().unwrap();
        let mut stream = StreamMetrics::new(metrics.clone(), false);
        stream.start_source(SourceType::Stdin);
        let mut late = counts(0);
        late.scan_end = stream.last_publish + PUBLISH_INTERVAL;
        stream.chunk(&stats(100), &late);
        assert_eq!(read_bytes(&metrics), 100);
    }

    #[test]
    fn end_publishes_open_batch() {
        let metrics = Metrics::new().unwrap();
        let mut stream = StreamMetrics::new(metrics.clone(), true);
        stream.start_source(SourceType::Stdin);
        let mut open_line = counts(1);
        open_line.last_byte = b'x';
        stream.chunk(&stats(100), &open_line);
        stream.end(&stats(100), true);
        assert_eq!(read_bytes(&metrics), 100);
        let records = metrics.records(SourceType::Stdin);
        assert_eq!(records.read.get(), 2, "open last line not counted");
        assert_eq!(records.written.get(), 2);
        assert_eq!(metrics.ready.get(), 0);
    }

    #[test]
    fn failed_write_not_counted_written() {
        let metrics = Metrics::new().unwrap();
        let mut stream = StreamMetrics::new(metrics.clone(), false);
        stream.start_source(SourceType::Stdin);
        stream.chunk(&stats(100), &counts(0));
        let mut failed = counts(0);
        failed.written = false;
        stream.chunk(&stats(250), &failed);
        stream.end(&stats(250), false);
        let counters = metrics.source(SourceType::Stdin);
        assert_eq!(counters.read_bytes.get(), 250);
        assert_eq!(counters.written_bytes.get(), 100);
    }

    #[test]
    fn epoch_clock_follows_instants() {
        let mut clock = EpochClock::now();
        let start = clock.at;
        let later = clock.epoch_seconds(start + Duration::from_millis(250));
        assert!((later - clock.seconds - 0.25).abs() < 1e-6);
        let wall = unix_seconds_now();
        let refreshed = clock.epoch_seconds(start + Duration::from_secs(5));
        assert!((refreshed - wall).abs() < 1.0, "{refreshed} vs {wall}");
    }
}
