//! Memory and thread counts of a process (tree) from /proc.

use std::collections::HashMap;

use anyhow::Context;

/// Memory of one process or the sum over a process tree, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    /// `VmRSS` from /proc/PID/status.
    pub rss_kib: u64,
    /// `Pss` from /proc/PID/smaps_rollup.
    pub pss_kib: u64,
    /// `Private_Clean + Private_Dirty` from smaps_rollup (unique set size).
    pub uss_kib: u64,
    /// `Threads` from /proc/PID/status.
    pub threads: u64,
    /// Number of processes summed.
    pub processes: u64,
}

impl std::ops::Add for Mem {
    type Output = Mem;
    fn add(self, o: Mem) -> Mem {
        Mem {
            rss_kib: self.rss_kib + o.rss_kib,
            pss_kib: self.pss_kib + o.pss_kib,
            uss_kib: self.uss_kib + o.uss_kib,
            threads: self.threads + o.threads,
            processes: self.processes + o.processes,
        }
    }
}

fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One process.
pub fn process(pid: u32) -> anyhow::Result<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
    Ok(Mem {
        rss_kib: field_kib(&status, "VmRSS").unwrap_or(0),
        threads: field_kib(&status, "Threads").unwrap_or(0),
        pss_kib: field_kib(&rollup, "Pss").unwrap_or(0),
        uss_kib: field_kib(&rollup, "Private_Clean").unwrap_or(0)
            + field_kib(&rollup, "Private_Dirty").unwrap_or(0),
        processes: 1,
    })
}

/// The process and all its descendants, summed. Processes that exit while
/// being read are skipped.
pub fn tree(pid: u32) -> anyhow::Result<Mem> {
    let mut total = process(pid)?;
    for child in descendants(pid) {
        if let Ok(m) = process(child) {
            total = total + m;
        }
    }
    Ok(total)
}

/// CPU time used by a process (user + system, including reaped children),
/// from /proc/PID/stat, in clock ticks (USER_HZ, 100 per second on Linux).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .context("malformed stat")?;
    // After "(comm)": state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Ok(f.iter().sum())
}

/// CPU time of the process tree in seconds (see [`cpu_ticks`]); processes
/// that exited inside the tree are counted through their parent's
/// children times once reaped.
pub fn tree_cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let mut ticks = cpu_ticks(pid)?;
    for child in descendants(pid) {
        ticks += cpu_ticks(child).unwrap_or(0);
    }
    Ok(ticks as f64 / 100.0)
}

/// All descendants of `pid` (by the parent pid in /proc/*/stat).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok())
            {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if let Some(c) = children.get(&p) {
            out.extend_from_slice(c);
            stack.extend_from_slice(c);
        }
    }
    out
}

/// Number of open file descriptors of a process (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> anyhow::Result<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?;
    Ok(dir.count() as u64)
}

/// The soft and hard `RLIMIT_NOFILE` of this process (from /proc/self/limits).
pub fn nofile_limit() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let soft = it.next()?.parse().ok()?;
    let hard = it.next()?.parse().ok()?;
    Some((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let t = "Name:\tx\nVmRSS:\t  1234 kB\nThreads:\t7\n";
        assert_eq!(field_kib(t, "VmRSS"), Some(1234));
        assert_eq!(field_kib(t, "Threads"), Some(7));
        assert_eq!(field_kib(t, "Pss"), None);
    }

    #[test]
    fn reads_self() {
        let m = process(std::process::id()).unwrap();
        assert!(m.rss_kib > 0);
        assert!(m.pss_kib > 0);
        assert!(m.threads >= 1);
        assert!(nofile_limit().is_some());
        assert!(fd_count(std::process::id()).unwrap() >= 3);
        assert!(tree_cpu_secs(std::process::id()).is_ok());
    }
}
