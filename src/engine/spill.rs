//! External sort of fixed-size records: the one mechanism by which the
//! engine's per-file structures stay bounded in memory (issue 24 item 1;
//! docs/organize.md, "Memory").
//!
//! A [`Sorter`] holds at most [`Spill::records`] records. When it is full it
//! sorts them and writes them out as a *run* to an unnamed temporary file in
//! [`Spill::dir`] (`tempfile_in`: `O_TMPFILE` on Linux, so a killed process
//! leaves nothing behind, and the space is freed when the file is closed).
//! [`Sorter::finish`] yields every record in sorted order: straight from
//! memory if it never spilled, else by a k-way merge of the runs (a binary
//! heap of run heads, each run read through its own buffer).
//!
//! Decisions:
//! - **Records are totally ordered.** Every record the engine sorts carries
//!   its file's index, so no two are equal and the merged order is exactly
//!   the in-memory sort's order (the tests check that at limits 1, 2, 3, 7
//!   and unbounded). Equal records are interchangeable anyway.
//! - **Fixed size, big-endian.** A record is [`Record::SIZE`] bytes, encoded
//!   by the record itself; no framing, no allocation per record, and a
//!   truncated run is an error, not a short read (each run knows its count).
//! - **Bounded fan-in.** At [`MAX_RUNS`] runs the runs are merged into one,
//!   so a tiny limit never opens thousands of files nor allocates thousands
//!   of buffers. With the default limit (a million records) that happens
//!   only beyond 63 million records.
//! - **Buffers**: [`IO_BUFFER`] per run (less for a run smaller than that),
//!   written through `BufWriter`, read through `BufReader`.
//! - I/O errors (a full disk under the data directory) are returned as
//!   errors; the job fails with them, as it would on any other I/O error.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fs::File,
    io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

/// Bytes of buffer per run file, for writing it and for reading it back.
pub const IO_BUFFER: usize = 1 << 20;

/// Runs a sorter keeps before merging them into one.
pub const MAX_RUNS: usize = 64;

/// A fixed-size record a [`Sorter`] can write to disk and read back.
///
/// `decode(encode(r)) == r` must hold, and the order must be total (no two
/// distinct records compare equal), so that a merge of sorted runs is the
/// in-memory sort.
pub trait Record: Ord + Copy + Send + Sync {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes the record into `out` (exactly [`Record::SIZE`] bytes).
    fn encode(&self, out: &mut [u8]);
    /// Reads a record from `bytes` (exactly [`Record::SIZE`] bytes).
    fn decode(bytes: &[u8]) -> Self;
}

/// Where and when to spill: records held in memory per sorter before it
/// writes a run, and the folder of the unnamed temporary files.
#[derive(Debug, Clone)]
pub struct Spill {
    dir: PathBuf,
    records: NonZeroUsize,
}

impl Spill {
    /// Spill beyond `records` records per sorter, into `dir` (made when a
    /// sorter first spills).
    pub fn new(dir: impl Into<PathBuf>, records: NonZeroUsize) -> Spill {
        Spill {
            dir: dir.into(),
            records,
        }
    }

    /// Never spill: everything is sorted in memory.
    pub fn in_memory() -> Spill {
        Spill::new(std::env::temp_dir(), NonZeroUsize::MAX)
    }

    pub fn records(&self) -> usize {
        self.records.get()
    }

    /// A new sorter with these settings.
    pub fn sorter<R: Record>(&self) -> Sorter<R> {
        self.sorter_for(0)
    }

    /// A new sorter for about `expected` records: its memory is reserved
    /// once, exactly (up to the limit), where growing by doubling would
    /// hold up to twice the records' room, and both the old and the new
    /// buffer while it moves (measured: a 1M organize's hash phase peaked
    /// 78 MiB higher that way).
    pub fn sorter_for<R: Record>(&self, expected: usize) -> Sorter<R> {
        Sorter {
            spill: self.clone(),
            memory: Vec::with_capacity(expected.min(self.records())),
            runs: Vec::new(),
        }
    }
}

/// A sorted run in a temporary file.
#[derive(Debug)]
struct Run {
    file: File,
    /// Records in the run.
    len: u64,
}

impl Run {
    /// Writes `records` (sorted) to a new temporary file in `dir`.
    fn write<R: Record>(
        dir: &Path,
        len: u64,
        records: impl Iterator<Item = io::Result<R>>,
    ) -> io::Result<Run> {
        // Made when first needed: most sorts never spill.
        std::fs::create_dir_all(dir)?;
        let file = tempfile::tempfile_in(dir)?;
        let capacity = buffer_for::<R>(len);
        let mut out = BufWriter::with_capacity(capacity, file);
        let mut bytes = vec![0u8; R::SIZE];
        let mut written = 0u64;
        for record in records {
            record?.encode(&mut bytes);
            out.write_all(&bytes)?;
            written += 1;
        }
        debug_assert_eq!(written, len);
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Run { file, len: written })
    }

    fn reader<R: Record>(self) -> RunReader<R, File> {
        RunReader::new(self.file, self.len)
    }
}

/// The buffer for a run of `len` records: [`IO_BUFFER`], or less for a
/// smaller run.
fn buffer_for<R: Record>(len: u64) -> usize {
    usize::try_from(len.saturating_mul(R::SIZE as u64))
        .unwrap_or(IO_BUFFER)
        .clamp(R::SIZE.max(1), IO_BUFFER)
}

/// Reads a run back, record by record, from `input` (the run's file, or
/// an [`At`] into a shared one).
struct RunReader<R, I> {
    input: BufReader<I>,
    left: u64,
    bytes: Vec<u8>,
    _record: std::marker::PhantomData<R>,
}

impl<R: Record, I: Read> RunReader<R, I> {
    fn new(input: I, len: u64) -> RunReader<R, I> {
        RunReader {
            input: BufReader::with_capacity(buffer_for::<R>(len), input),
            left: len,
            bytes: vec![0u8; R::SIZE],
            _record: std::marker::PhantomData,
        }
    }
}

impl<R: Record, I: Read> Iterator for RunReader<R, I> {
    type Item = io::Result<R>;

    fn next(&mut self) -> Option<io::Result<R>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(
            self.input
                .read_exact(&mut self.bytes)
                .map(|()| R::decode(&self.bytes)),
        )
    }
}

/// Reads a shared file from an offset of its own (`pread`), so several
/// readers of one [`Store`] never move each other's position.
struct At<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Sorts records in bounded memory (see the module doc).
#[derive(Debug)]
pub struct Sorter<R> {
    spill: Spill,
    memory: Vec<R>,
    runs: Vec<Run>,
}

impl<R: Record> Sorter<R> {
    /// Adds a record; writes a run when the memory is full.
    pub fn push(&mut self, record: R) -> io::Result<()> {
        self.memory.push(record);
        if self.memory.len() >= self.spill.records() {
            self.write_run()?;
        }
        Ok(())
    }

    /// Whether some records went to disk.
    pub fn spilled(&self) -> bool {
        !self.runs.is_empty()
    }

    fn write_run(&mut self) -> io::Result<()> {
        self.memory.sort_unstable();
        let len = self.memory.len() as u64;
        let run = Run::write(&self.spill.dir, len, self.memory.drain(..).map(Ok))?;
        self.runs.push(run);
        if self.runs.len() >= MAX_RUNS {
            let runs = std::mem::take(&mut self.runs);
            let len = runs.iter().map(|r| r.len).sum();
            let merged = Run::write(&self.spill.dir, len, Merge::<R>::new(runs)?)?;
            self.runs.push(merged);
        }
        Ok(())
    }

    /// Every record pushed, in sorted order.
    pub fn finish(mut self) -> io::Result<Sorted<R>> {
        if self.runs.is_empty() {
            self.memory.sort_unstable();
            return Ok(Sorted(Inner::Memory(self.memory.into_iter())));
        }
        if !self.memory.is_empty() {
            self.write_run()?;
        }
        // The memory is given back before the merge starts.
        drop(std::mem::take(&mut self.memory));
        Ok(Sorted(Inner::Merge(Merge::new(self.runs)?)))
    }
}

impl<R: Record> Sorter<R> {
    /// Every record pushed, sorted and kept to be read (in order) as often
    /// as needed: in memory if the sorter never spilled, else merged into
    /// one temporary file.
    pub fn into_store(mut self) -> io::Result<Store<R>> {
        if self.runs.is_empty() {
            self.memory.sort_unstable();
            self.memory.shrink_to_fit();
            return Ok(Store(StoreInner::Memory(self.memory)));
        }
        let dir = self.spill.dir.clone();
        let len = (self.runs.iter().map(|r| r.len).sum::<u64>()) + self.memory.len() as u64;
        let run = Run::write(&dir, len, self.finish()?)?;
        Ok(Store(StoreInner::File(run)))
    }
}

/// Sorted records kept for reading in order, any number of times (see
/// [`Sorter::into_store`]).
#[derive(Debug)]
pub struct Store<R>(StoreInner<R>);

#[derive(Debug)]
enum StoreInner<R> {
    Memory(Vec<R>),
    File(Run),
}

impl<R> Default for Store<R> {
    fn default() -> Self {
        Store(StoreInner::Memory(Vec::new()))
    }
}

impl<R: Record> Store<R> {
    /// The records, in order; each call reads from the start, through a
    /// buffer of its own.
    pub fn iter(&self) -> Box<dyn Iterator<Item = io::Result<R>> + Send + '_> {
        match &self.0 {
            StoreInner::Memory(records) => Box::new(records.iter().copied().map(Ok)),
            StoreInner::File(run) => Box::new(RunReader::new(
                At {
                    file: &run.file,
                    offset: 0,
                },
                run.len,
            )),
        }
    }

    /// How many records there are.
    pub fn len(&self) -> u64 {
        match &self.0 {
            StoreInner::Memory(records) => records.len() as u64,
            StoreInner::File(run) => run.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the records are in a file rather than in memory.
    pub fn on_disk(&self) -> bool {
        matches!(self.0, StoreInner::File(_))
    }
}

/// The records of a [`Sorter`], in order. An item is an error when a run
/// could not be read back.
pub struct Sorted<R: Record>(Inner<R>);

enum Inner<R: Record> {
    Memory(std::vec::IntoIter<R>),
    Merge(Merge<R>),
}

impl<R: Record> Iterator for Sorted<R> {
    type Item = io::Result<R>;

    fn next(&mut self) -> Option<io::Result<R>> {
        match &mut self.0 {
            Inner::Memory(records) => records.next().map(Ok),
            Inner::Merge(merge) => merge.next(),
        }
    }
}

/// A k-way merge of sorted runs: a heap of each run's next record.
struct Merge<R: Record> {
    readers: Vec<RunReader<R, File>>,
    /// The smallest unread record of each run that has one, with the run's
    /// position in `readers`.
    heads: BinaryHeap<Reverse<(R, usize)>>,
    /// Set after an error: the merge yields nothing more.
    failed: bool,
}

impl<R: Record> Merge<R> {
    fn new(runs: Vec<Run>) -> io::Result<Merge<R>> {
        let mut readers: Vec<RunReader<R, File>> = runs.into_iter().map(Run::reader).collect();
        let mut heads = BinaryHeap::with_capacity(readers.len());
        for (at, reader) in readers.iter_mut().enumerate() {
            if let Some(record) = reader.next() {
                heads.push(Reverse((record?, at)));
            }
        }
        Ok(Merge {
            readers,
            heads,
            failed: false,
        })
    }
}

impl<R: Record> Iterator for Merge<R> {
    type Item = io::Result<R>;

    fn next(&mut self) -> Option<io::Result<R>> {
        if self.failed {
            return None;
        }
        let Reverse((record, at)) = self.heads.pop()?;
        match self.readers[at].next() {
            Some(Ok(next)) => self.heads.push(Reverse((next, at))),
            Some(Err(error)) => {
                self.failed = true;
                return Some(Err(error));
            }
            None => {}
        }
        Some(Ok(record))
    }
}

/// Runs of two or more consecutive items with equal keys, from an iterator
/// sorted by key: only one run is held at a time. Errors are passed on.
pub fn runs_of_equal<T, K: PartialEq>(
    sorted: impl Iterator<Item = io::Result<T>>,
    key: impl Fn(&T) -> K,
) -> impl Iterator<Item = io::Result<Vec<T>>> {
    let mut sorted = sorted.peekable();
    std::iter::from_fn(move || {
        loop {
            let first = match sorted.next()? {
                Ok(first) => first,
                Err(error) => return Some(Err(error)),
            };
            let first_key = key(&first);
            let mut run = vec![first];
            while let Some(Ok(next)) = sorted.peek() {
                if key(next) != first_key {
                    break;
                }
                run.extend(sorted.next().and_then(Result::ok));
            }
            if run.len() > 1 {
                return Some(Ok(run));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    /// A key that collides often (a few distinct values) and an index that
    /// makes the record unique, as the engine's records do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Keyed {
        key: u16,
        tag: [u8; 3],
        index: u32,
    }

    impl Record for Keyed {
        const SIZE: usize = 9;
        fn encode(&self, out: &mut [u8]) {
            out[..2].copy_from_slice(&self.key.to_be_bytes());
            out[2..5].copy_from_slice(&self.tag);
            out[5..9].copy_from_slice(&self.index.to_be_bytes());
        }
        fn decode(bytes: &[u8]) -> Self {
            Keyed {
                key: u16::from_be_bytes(bytes[..2].try_into().unwrap()),
                tag: bytes[2..5].try_into().unwrap(),
                index: u32::from_be_bytes(bytes[5..9].try_into().unwrap()),
            }
        }
    }

    fn limits(dir: &Path) -> Vec<Spill> {
        let mut limits: Vec<Spill> = [1, 2, 3, 7]
            .into_iter()
            .map(|n| Spill::new(dir, NonZeroUsize::new(n).unwrap()))
            .collect();
        limits.push(Spill::in_memory());
        limits
    }

    fn sort_with(spill: &Spill, records: &[Keyed]) -> (Vec<Keyed>, bool) {
        let mut sorter = spill.sorter();
        for &r in records {
            sorter.push(r).unwrap();
        }
        let spilled = sorter.spilled();
        let out = sorter.finish().unwrap().collect::<io::Result<_>>().unwrap();
        (out, spilled)
    }

    fn random(seed: u64, n: u32, keys: u16) -> Vec<Keyed> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|index| Keyed {
                key: rng.random_range(0..keys),
                tag: [rng.random(), rng.random(), rng.random()],
                index,
            })
            .collect()
    }

    #[test]
    fn a_record_round_trips_through_its_bytes() {
        for r in random(1, 100, u16::MAX) {
            let mut bytes = [0u8; Keyed::SIZE];
            r.encode(&mut bytes);
            assert_eq!(Keyed::decode(&bytes), r);
        }
    }

    #[test]
    fn the_merged_order_is_the_in_memory_sort_at_every_limit() {
        let dir = tempfile::tempdir().unwrap();
        // 1000 records at limit 1 make 1000 runs: merged down at MAX_RUNS.
        for (seed, n, keys) in [(7, 1000, 5), (8, 257, 1000), (9, 64, 2), (10, 1, 3)] {
            let records = random(seed, n, keys);
            let mut expected = records.clone();
            expected.sort();
            for spill in limits(dir.path()) {
                let (out, spilled) = sort_with(&spill, &records);
                assert_eq!(out, expected, "seed {seed} at limit {}", spill.records());
                assert_eq!(spilled, n as usize >= spill.records());
            }
        }
        // Nothing is left in the spill folder: the runs had no name.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_store_reads_the_sorted_records_again_and_again() {
        let dir = tempfile::tempdir().unwrap();
        let records = random(11, 300, 40);
        let mut expected = records.clone();
        expected.sort();
        for spill in limits(dir.path()) {
            let mut sorter = spill.sorter();
            for &r in &records {
                sorter.push(r).unwrap();
            }
            let store = sorter.into_store().unwrap();
            assert_eq!(store.on_disk(), spill.records() <= 300);
            assert_eq!(store.len(), 300);
            // Two readers at once, interleaved: neither moves the other.
            let (mut a, mut b) = (store.iter(), store.iter());
            for want in &expected {
                assert_eq!(&a.next().unwrap().unwrap(), want);
                assert_eq!(&b.next().unwrap().unwrap(), want);
            }
            assert!(a.next().is_none() && b.next().is_none());
            let again: Vec<Keyed> = store.iter().collect::<io::Result<_>>().unwrap();
            assert_eq!(again, expected);
        }
        assert!(Store::<Keyed>::default().iter().next().is_none());
    }

    #[test]
    fn an_empty_input_yields_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for spill in limits(dir.path()) {
            assert_eq!(sort_with(&spill, &[]), (vec![], false));
        }
    }

    #[test]
    fn all_equal_keys_come_out_whole_and_in_index_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = random(3, 200, 1);
        for r in &mut records {
            r.tag = [9; 3];
        }
        records.reverse();
        for spill in limits(dir.path()) {
            let (out, _) = sort_with(&spill, &records);
            let indexes: Vec<u32> = out.iter().map(|r| r.index).collect();
            assert_eq!(indexes, (0..200).collect::<Vec<_>>());
            let groups: Vec<Vec<Keyed>> = runs_of_equal(out.into_iter().map(Ok), |r| r.key)
                .collect::<io::Result<_>>()
                .unwrap();
            assert_eq!(groups.len(), 1);
            assert_eq!(groups[0].len(), 200);
        }
    }

    #[test]
    fn runs_of_equal_keys_skip_singles_and_keep_order() {
        let keys = [1, 1, 2, 3, 3, 3, 4, 5, 5];
        let runs: Vec<Vec<(u8, usize)>> = runs_of_equal(
            keys.iter().enumerate().map(|(i, &k)| Ok((k, i))),
            |&(k, _)| k,
        )
        .collect::<io::Result<_>>()
        .unwrap();
        let indexes: Vec<Vec<usize>> = runs
            .iter()
            .map(|run| run.iter().map(|&(_, i)| i).collect())
            .collect();
        assert_eq!(indexes, vec![vec![0, 1], vec![3, 4, 5], vec![7, 8]]);
    }

    #[test]
    fn a_truncated_run_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let records = random(4, 10, 100);
        let run = Run::write(dir.path(), 10, records.iter().copied().map(Ok)).unwrap();
        run.file.set_len(5 * Keyed::SIZE as u64 + 3).unwrap();
        let read: Vec<io::Result<Keyed>> = run.reader().collect();
        assert_eq!(read.len(), 10);
        assert!(read[..5].iter().all(Result::is_ok));
        assert_eq!(
            read[5].as_ref().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
