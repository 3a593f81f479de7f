//! A reproducible synthetic tree: seeded, realistic extensions, nested
//! folders, a fraction of duplicates (some of them hard links), mostly small
//! files with a tail of large ones.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

/// SplitMix64: tiny, fast and stable across crate versions (the tree must be
/// the same for the same seed forever).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (hi exclusive, hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Extension mix, weighted roughly like a home folder.
const EXTENSIONS: &[(&str, u32)] = &[
    ("jpg", 22),
    ("png", 8),
    ("heic", 3),
    ("gif", 1),
    ("pdf", 9),
    ("docx", 5),
    ("xlsx", 3),
    ("pptx", 1),
    ("txt", 8),
    ("md", 3),
    ("csv", 3),
    ("json", 3),
    ("mp3", 5),
    ("flac", 1),
    ("mp4", 3),
    ("mov", 2),
    ("zip", 2),
    ("tar.gz", 1),
    ("rs", 2),
    ("py", 3),
    ("js", 2),
    ("html", 1),
    ("log", 2),
    ("bin", 1),
    ("noext", 2),
];

const WORDS: &[&str] = &[
    "photos",
    "work",
    "invoices",
    "music",
    "projects",
    "archive",
    "2019",
    "2021",
    "2023",
    "holiday",
    "misc",
    "downloads",
    "scans",
    "drafts",
    "backup",
    "family",
    "taxes",
    "notes",
    "videos",
    "old",
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeSummary {
    pub root: PathBuf,
    pub seed: u64,
    pub files: u64,
    pub directories: u64,
    pub bytes: u64,
    pub duplicate_copies: u64,
    pub hard_links: u64,
    pub large_files: u64,
    pub seconds: f64,
}

/// Size distribution: 90 % small (64 B – 4 KiB), 9.5 % medium (4 – 64 KiB),
/// 0.5 % large (256 KiB – 2 MiB). About 10 KiB per file on average.
fn pick_size(rng: &mut Rng) -> (u64, bool) {
    let u = rng.unit();
    if u < 0.90 {
        (rng.range(64, 4096), false)
    } else if u < 0.995 {
        (rng.range(4096, 65536), false)
    } else {
        (rng.range(256 * 1024, 2 * 1024 * 1024), true)
    }
}

fn pick_ext(rng: &mut Rng) -> &'static str {
    let total: u32 = EXTENSIONS.iter().map(|(_, w)| w).sum();
    let mut r = rng.range(0, total as u64) as u32;
    for (ext, w) in EXTENSIONS {
        if r < *w {
            return ext;
        }
        r -= w;
    }
    "txt"
}

/// Unique content for `(content_seed, size)`: the seed is written first so
/// two different seeds never produce the same bytes.
fn write_content(
    path: &Path,
    content_seed: u64,
    size: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    buf.clear();
    let mut rng = Rng::new(content_seed);
    buf.extend_from_slice(&content_seed.to_le_bytes());
    while (buf.len() as u64) < size {
        buf.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    buf.truncate(size as usize);
    let mut f = fs::File::create(path)?;
    f.write_all(buf)
}

/// Writes `files` files under `root` (which must not exist yet or be empty).
pub fn generate(
    root: &Path,
    files: u64,
    seed: u64,
    duplicate_fraction: f64,
) -> anyhow::Result<TreeSummary> {
    let started = std::time::Instant::now();
    let mut rng = Rng::new(seed);
    fs::create_dir_all(root)?;
    let dir_count = (files / 40).max(1);
    let mut dirs = Vec::with_capacity(dir_count as usize);
    for d in 0..dir_count {
        let depth = rng.range(1, 5);
        let mut p = root.to_path_buf();
        for level in 0..depth {
            let w = WORDS[rng.range(0, WORDS.len() as u64) as usize];
            // The last level is unique so directories spread evenly.
            if level + 1 == depth {
                p.push(format!("{w}-{d}"));
            } else {
                p.push(w);
            }
        }
        fs::create_dir_all(&p)?;
        dirs.push(p);
    }
    // (path, content seed, size) of original files, for duplicates.
    let mut originals: Vec<(PathBuf, u64, u64)> = Vec::with_capacity(files as usize);
    let mut summary = TreeSummary {
        root: root.to_path_buf(),
        seed,
        files: 0,
        directories: dir_count,
        bytes: 0,
        duplicate_copies: 0,
        hard_links: 0,
        large_files: 0,
        seconds: 0.0,
    };
    let mut buf = Vec::new();
    for i in 0..files {
        let dir = &dirs[rng.range(0, dirs.len() as u64) as usize];
        let ext = pick_ext(&mut rng);
        let word = WORDS[rng.range(0, WORDS.len() as u64) as usize];
        let name = if ext == "noext" {
            format!("{word}_{i}")
        } else {
            format!("{word}_{i}.{ext}")
        };
        let path = dir.join(name);
        let duplicate = !originals.is_empty() && rng.unit() < duplicate_fraction;
        if duplicate {
            let (src, content_seed, size) =
                originals[rng.range(0, originals.len() as u64) as usize].clone();
            if rng.unit() < 0.25 {
                fs::hard_link(&src, &path)?;
                summary.hard_links += 1;
            } else {
                write_content(&path, content_seed, size, &mut buf)?;
                summary.duplicate_copies += 1;
            }
            summary.bytes += size;
        } else {
            let (size, large) = pick_size(&mut rng);
            let content_seed = seed.wrapping_mul(1_000_003).wrapping_add(i);
            write_content(&path, content_seed, size, &mut buf)?;
            if large {
                summary.large_files += 1;
            }
            summary.bytes += size;
            originals.push((path, content_seed, size));
        }
        summary.files += 1;
    }
    // Flush the tree to disk now (it stays in the page cache): otherwise
    // the kernel writes ten gigabytes back in the middle of the measured
    // organize, and the figures measure the writeback.
    rustix::fs::syncfs(fs::File::open(root)?)?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }
}
