//! Counting an import while it streams: the bytes received, the bytes they
//! expand to, the entries, and the limits on them (a zip bomb is stopped
//! by these counts, while it expands, not after).
//!
//! Two readers feed one [`Meter`]: [`Received`] sits on the archive as it
//! arrives (compressed), [`Expanded`] on what the decompressor (or a zip
//! entry's inflater) makes of it. A limit hit inside a reader becomes an
//! `io::Error` for the format crates, which may wrap or replace it; the
//! meter remembers the real reason ([`Meter::stopped`]), so the import
//! reports that and not the crate's rewording.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;

use crate::domain::archive::ArchiveLimits;

/// Most bytes a tar reader may consume on its own between two entries:
/// headers, GNU long names and PAX records, which the `tar` crate reads
/// into memory whole.
pub(crate) const MAX_HEADER_BYTES: u64 = 1024 * 1024;

/// Why the meter stopped an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A limit on the archive's size, ratio, entries or headers (message).
    TooLarge(String),
    /// The source itself failed (the client went away, …).
    Source,
}

/// The counts of one import (single-threaded: the extraction runs on one
/// blocking thread).
pub(crate) struct Meter {
    limits: ArchiveLimits,
    received: Cell<u64>,
    expanded: Cell<u64>,
    entries: Cell<u64>,
    /// Whether the tar reader is between entries (reading headers).
    in_headers: Cell<bool>,
    header_bytes: Cell<u64>,
    stopped: RefCell<Option<Stop>>,
}

impl Meter {
    pub(crate) fn new(limits: ArchiveLimits) -> Rc<Meter> {
        Rc::new(Meter {
            limits,
            received: Cell::new(0),
            expanded: Cell::new(0),
            entries: Cell::new(0),
            in_headers: Cell::new(false),
            header_bytes: Cell::new(0),
            stopped: RefCell::new(None),
        })
    }

    /// Why the import was stopped, if a limit or the source stopped it.
    pub(crate) fn stopped(&self) -> Option<Stop> {
        self.stopped.borrow().clone()
    }

    /// Bytes of the archive received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.get()
    }

    fn stop(&self, why: Stop) -> io::Error {
        let error = match &why {
            Stop::TooLarge(message) => io::Error::other(message.clone()),
            Stop::Source => io::Error::other("the archive's source failed"),
        };
        self.stopped.borrow_mut().get_or_insert(why);
        error
    }

    /// Counts one more entry (of any kind).
    pub(crate) fn count_entry(&self) -> io::Result<()> {
        let n = self.entries.get() + 1;
        self.entries.set(n);
        if n > self.limits.max_entries {
            return Err(self.stop(Stop::TooLarge(format!(
                "the archive has more than {} entries (ARCHIVE_MAX_ENTRIES)",
                self.limits.max_entries
            ))));
        }
        Ok(())
    }

    /// Marks the tar reader as reading headers (`true`, before asking for
    /// the next entry) or an entry's data (`false`).
    pub(crate) fn reading_headers(&self, yes: bool) {
        self.in_headers.set(yes);
        if yes {
            self.header_bytes.set(0);
        }
    }

    fn expand(&self, n: u64) -> io::Result<()> {
        let expanded = self.expanded.get() + n;
        self.expanded.set(expanded);
        let limits = &self.limits;
        if expanded > limits.max_expanded_bytes {
            return Err(self.stop(Stop::TooLarge(format!(
                "the archive expands to more than {} bytes (ARCHIVE_MAX_EXPANDED_BYTES)",
                limits.max_expanded_bytes
            ))));
        }
        if expanded > limits.ratio_floor_bytes
            && expanded > self.received.get().saturating_mul(limits.max_ratio)
        {
            return Err(self.stop(Stop::TooLarge(format!(
                "the archive expands more than {} times its size: {} bytes from the first {} \
                 received (ARCHIVE_MAX_RATIO; a zip bomb?)",
                limits.max_ratio,
                expanded,
                self.received.get()
            ))));
        }
        if self.in_headers.get() {
            let headers = self.header_bytes.get() + n;
            self.header_bytes.set(headers);
            if headers > MAX_HEADER_BYTES {
                return Err(self.stop(Stop::TooLarge(format!(
                    "an entry's header (long name or PAX record) is larger than \
                     {MAX_HEADER_BYTES} bytes"
                ))));
            }
        }
        Ok(())
    }
}

/// The archive as received: counts its bytes.
pub(crate) struct Received<R> {
    pub(crate) inner: R,
    pub(crate) meter: Rc<Meter>,
}

impl<R: Read> Read for Received<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.meter
                    .received
                    .set(self.meter.received.get() + n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.meter.stopped.borrow_mut().get_or_insert(Stop::Source);
                Err(e)
            }
        }
    }
}

/// The archive's expanded bytes: counts them and enforces the limits.
pub(crate) struct Expanded<R> {
    pub(crate) inner: R,
    pub(crate) meter: Rc<Meter>,
}

impl<R: Read> Read for Expanded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(stop) = self.meter.stopped() {
            return Err(self.meter.stop(stop));
        }
        let n = self.inner.read(buf)?;
        self.meter.expand(n as u64)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ArchiveLimits {
        ArchiveLimits {
            max_expanded_bytes: 10_000,
            max_entries: 3,
            max_ratio: 10,
            ratio_floor_bytes: 100,
        }
    }

    #[test]
    fn the_ratio_is_checked_above_the_floor_only() {
        let meter = Meter::new(limits());
        meter.received.set(5);
        // 100 bytes from 5: under the floor.
        assert!(meter.expand(100).is_ok());
        // 101 > 5 * 10: a bomb.
        assert!(meter.expand(1).is_err());
        assert!(matches!(meter.stopped(), Some(Stop::TooLarge(m)) if m.contains("10 times")));
    }

    #[test]
    fn total_entries_and_headers_are_bounded() {
        let meter = Meter::new(limits());
        meter.received.set(100_000);
        assert!(meter.expand(10_000).is_ok());
        assert!(meter.expand(1).is_err());

        let meter = Meter::new(limits());
        for _ in 0..3 {
            meter.count_entry().unwrap();
        }
        assert!(meter.count_entry().is_err());

        let meter = Meter::new(ArchiveLimits {
            max_expanded_bytes: u64::MAX,
            max_ratio: u64::MAX,
            ..limits()
        });
        meter.received.set(1);
        meter.reading_headers(true);
        assert!(meter.expand(MAX_HEADER_BYTES).is_ok());
        assert!(meter.expand(1).is_err());
        // Entry data does not count as headers.
        let meter = Meter::new(ArchiveLimits {
            max_expanded_bytes: u64::MAX,
            max_ratio: u64::MAX,
            ..limits()
        });
        meter.received.set(1);
        meter.reading_headers(false);
        assert!(meter.expand(2 * MAX_HEADER_BYTES).is_ok());
    }

    #[test]
    fn a_stopped_meter_stays_stopped() {
        let meter = Meter::new(limits());
        let mut expanded = Expanded {
            inner: &[0u8; 50][..],
            meter: meter.clone(),
        };
        assert!(meter.count_entry().is_ok());
        meter.stop(Stop::TooLarge("stop".into()));
        let mut buf = [0u8; 10];
        assert!(expanded.read(&mut buf).is_err());
    }
}
