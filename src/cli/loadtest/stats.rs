//! Latency histogram (log-linear, ~1.5 % precision, bounded memory) and the
//! server process sampler (/proc).

use std::{path::PathBuf, time::Duration};

const SUB: u64 = 64;
const LINEAR: u64 = 128;
const BUCKETS: usize = (LINEAR + 57 * SUB) as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub count: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let b = 63 - v.leading_zeros() as u64; // >= 7
    let shift = b - 6;
    let mant = (v >> shift) - SUB;
    ((LINEAR + (b - 7) * SUB + mant) as usize).min(BUCKETS - 1)
}

fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let b = (i - LINEAR) / SUB + 7;
    let mant = (i - LINEAR) % SUB;
    (SUB + mant) << (b - 6)
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.counts[bucket(us)] += 1;
        self.count += 1;
        self.sum_us += us as u128;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    fn percentile_us(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // Midpoint of the bucket, clamped to what was really seen.
                let lo = lower_bound(i);
                let hi = lower_bound(i + 1).max(lo + 1);
                return ((lo + hi) / 2).clamp(self.min_us, self.max_us);
            }
        }
        self.max_us
    }

    /// min/avg/p50/p95/p99/max in milliseconds.
    pub fn summary(&self) -> serde_json::Value {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.count == 0 {
            return serde_json::json!({"count": 0, "min_ms": 0.0, "avg_ms": 0.0, "p50_ms": 0.0,
                "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0});
        }
        serde_json::json!({
            "count": self.count,
            "min_ms": ms(self.min_us),
            "avg_ms": self.sum_us as f64 / self.count as f64 / 1000.0,
            "p50_ms": ms(self.percentile_us(50.0)),
            "p95_ms": ms(self.percentile_us(95.0)),
            "p99_ms": ms(self.percentile_us(99.0)),
            "max_ms": ms(self.max_us),
        })
    }
}

/// Samples a process's RSS and CPU time from /proc every 100 ms.
pub struct ProcSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<serde_json::Value>,
}

/// (VmRSS, VmHWM) of process `pid`, in KiB.
pub fn read_rss_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:").unwrap_or(0)))
}

fn read_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 (1-based), i.e. 11 and 12 after ")".
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

impl ProcSampler {
    pub fn start(pid: u32) -> anyhow::Result<ProcSampler> {
        let start_ticks = read_cpu_ticks(pid)
            .ok_or_else(|| anyhow::anyhow!("--server-pid {pid}: cannot read /proc/{pid}/stat"))?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut peak_rss_kb = 0u64;
            let mut hwm_kb = 0u64;
            let mut samples = 0u64;
            let mut last_ticks = start_ticks;
            loop {
                if let Some((rss, hwm)) = read_rss_kb(pid) {
                    peak_rss_kb = peak_rss_kb.max(rss);
                    hwm_kb = hwm_kb.max(hwm);
                    samples += 1;
                }
                if let Some(t) = read_cpu_ticks(pid) {
                    last_ticks = t;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => break,
                }
            }
            if let Some(t) = read_cpu_ticks(pid) {
                last_ticks = t;
            }
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let cpu_secs = (last_ticks - start_ticks) as f64 / hz;
            serde_json::json!({
                "pid": pid,
                "samples": samples,
                "peak_rss_mb": peak_rss_kb as f64 / 1024.0,
                "vm_hwm_mb": hwm_kb as f64 / 1024.0,
                "cpu_seconds": cpu_secs,
                "avg_cpu_percent": cpu_secs / secs * 100.0,
                "note": "avg_cpu_percent is of one core (200 = both cores of a 2-core machine); vm_hwm_mb is the peak over the process's life",
            })
        });
        Ok(ProcSampler { stop, task })
    }

    pub async fn finish(self) -> serde_json::Value {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut prev = 0;
        for v in [0u64, 1, 127, 128, 129, 1000, 10_000, 1_000_000, 1 << 40] {
            let b = bucket(v);
            assert!(b >= prev);
            prev = b;
            let lo = lower_bound(b);
            assert!(lo <= v, "{v} {lo}");
            assert!(v - lo <= v / 60 + 1, "{v} {lo}");
        }
    }

    #[test]
    fn percentiles() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p95 = h.percentile_us(95.0) as f64 / 1000.0;
        assert!((93.0..=97.0).contains(&p95), "{p95}");
    }
}
