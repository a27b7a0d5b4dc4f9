//! What the end-to-end benchmarks measure of a process, and their command-line flags.

/// The build that runs the pipeline: `this` one's binary, or the one `BENCH_RUN_BIN` names
/// (another build's, for before/after numbers in one run on the same data).
pub fn run_bin(this: &str) -> String {
    std::env::var("BENCH_RUN_BIN").unwrap_or_else(|_| this.to_owned())
}

/// The value of command-line flag `name`, given as `name=value` or `name value`; `Some("")`
/// for a flag given alone.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            let next = args.get(i + 1).filter(|v| !v.starts_with('-'));
            return Some(next.cloned().unwrap_or_default());
        }
        a.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_owned)
    })
}

/// A field of `/proc/<pid>/status` given in kB (`VmRSS`, `VmHWM`), in MiB; `None` when the
/// process is gone.
pub fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// User + system CPU seconds of process `pid` (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// Clock ticks since boot that all the machine's cores spent busy (anything but idle and
/// waiting for I/O), and in all, from `/proc/stat`.
#[allow(dead_code)] // The latency bench does not use it.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // `cpu  user nice system idle iowait irq softirq steal …`: all cores together.
    let all = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = all
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total = ticks.iter().sum();
    let idle: u64 = ticks.get(3..5).map_or(0, |t| t.iter().sum());
    (total - idle, total)
}

/// The share of the clock ticks between two [`machine_ticks`] readings that were busy.
#[allow(dead_code)] // The latency bench does not use it.
pub fn busy_share((busy_a, total_a): (u64, u64), (busy_b, total_b): (u64, u64)) -> f64 {
    (busy_b - busy_a) as f64 / (total_b - total_a).max(1) as f64
}

/// User + system CPU seconds and peak RSS (MiB) of process `pid`.
pub fn usage(pid: u32) -> (f64, f64) {
    (
        cpu_seconds(pid),
        proc_status_mib(pid, "VmHWM").unwrap_or(0.0),
    )
}
