//! Scoped worker threads over a slice, shared by the engine's parallel
//! steps: the scan walks top-level folders with it (a chunk of one folder),
//! the duplicate finder hashes files with it (chunks of 64 files).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work` over `items` on up to `threads` threads and returns the
/// results in the items' order. Threads take `chunk` items at a time from a
/// shared counter, so a thread that drew slow items (a big folder, a big
/// file) does not hold up the rest; larger chunks touch the counter less.
/// With one thread (or one chunk) the work runs on the calling thread.
///
/// The results stay in the chunks the threads made ([`InOrder`]): copying
/// them into one vector would hold every result twice for a moment, which
/// at a million files was the peak of an organize's memory.
pub fn map_ordered<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    chunk: usize,
    work: impl Fn(&T) -> R + Sync,
) -> InOrder<R> {
    map_indexed(items.len(), threads, chunk, |i| work(&items[i]))
}

/// [`map_ordered`] over the indexes `0..len`.
pub fn map_indexed<R: Send>(
    len: usize,
    threads: usize,
    chunk: usize,
    work: impl Fn(usize) -> R + Sync,
) -> InOrder<R> {
    let chunk = chunk.max(1);
    let threads = threads.max(1).min(len.div_ceil(chunk));
    if threads <= 1 {
        return InOrder {
            parts: vec![(0..len).map(work).collect()],
        };
    }
    let next = AtomicUsize::new(0);
    let mut chunks: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (work, next) = (&work, &next);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let start = next.fetch_add(chunk, Ordering::Relaxed);
                        if start >= len {
                            return out;
                        }
                        let end = (start + chunk).min(len);
                        out.push((start, (start..end).map(work).collect()));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("engine worker thread"))
            .collect()
    });
    chunks.sort_unstable_by_key(|(start, _)| *start);
    InOrder {
        parts: chunks.into_iter().map(|(_, part)| part).collect(),
    }
}

/// The results of [`map_ordered`], in the items' order. Iterating by value
/// frees each chunk as soon as it has been read.
pub struct InOrder<R> {
    parts: Vec<Vec<R>>,
}

impl<R> InOrder<R> {
    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.parts.iter().all(Vec::is_empty)
    }

    pub fn iter(&self) -> impl Iterator<Item = &R> {
        self.parts.iter().flatten()
    }
}

impl<R> IntoIterator for InOrder<R> {
    type Item = R;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<R>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.parts.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_items_order_whatever_the_threads_and_chunks() {
        let items: Vec<u64> = (0..1_000).collect();
        // Uneven work, so threads finish their chunks out of order.
        let work = |&n: &u64| {
            if n % 97 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            n * 3
        };
        let expected: Vec<u64> = items.iter().map(|n| n * 3).collect();
        for threads in [0, 1, 2, 3, 8] {
            for chunk in [0, 1, 7, 64, 5_000] {
                let results = map_ordered(&items, threads, chunk, work);
                assert_eq!(results.len(), expected.len());
                assert_eq!(
                    results.into_iter().collect::<Vec<_>>(),
                    expected,
                    "{threads} threads, chunks of {chunk}"
                );
            }
        }
        assert!(map_ordered(&[] as &[u64], 4, 64, work).is_empty());
        assert_eq!(map_ordered(&items, 2, 64, work).iter().count(), items.len());
    }
}
