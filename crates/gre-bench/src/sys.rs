//! What the tool reads from the operating system (Linux): a process's CPU time and resident
//! memory from /proc, the machine's CPU time, the pid of the process listening on a port, and
//! the open-file limit. Nothing here is needed for correctness: when /proc is not there (another
//! OS, a relay on another machine) the figures are reported as null.

use std::time::Instant;

/// Clock ticks per second of /proc's CPU times (sysconf(_SC_CLK_TCK); 100 on Linux).
pub fn clock_ticks() -> f64 {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn sysconf(name: i32) -> i64;
        }
        const SC_CLK_TCK: i32 = 2; // <unistd.h> on Linux (glibc and musl)
                                   // SAFETY: sysconf has no preconditions; it only reads a constant.
        let t = unsafe { sysconf(SC_CLK_TCK) };
        if t > 0 {
            return t as f64;
        }
    }
    100.0
}

/// Raises this process's soft open-file limit to its hard limit (the tool holds one socket per
/// simulated client). Returns the soft limit now in force, if it could be read.
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Rlimit {
            cur: u64,
            max: u64,
        }
        extern "C" {
            fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
            fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
        }
        const RLIMIT_NOFILE: i32 = 7;
        let mut r = Rlimit { cur: 0, max: 0 };
        // SAFETY: plain C calls with a valid pointer to a struct laid out like `struct rlimit`
        // (two 64-bit rlim_t on 64-bit Linux).
        unsafe {
            if getrlimit(RLIMIT_NOFILE, &mut r) != 0 {
                return None;
            }
            if r.cur < r.max {
                let want = Rlimit {
                    cur: r.max,
                    max: r.max,
                };
                if setrlimit(RLIMIT_NOFILE, &want) == 0 {
                    r.cur = r.max;
                }
            }
        }
        Some(r.cur)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_times(pid, false)
}

/// User and system CPU seconds of a process, separately.
pub fn user_system_seconds(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Some((field(11)? / clock_ticks(), field(12)? / clock_ticks()))
}

/// Context switches (voluntary + involuntary) of all the threads of a process so far: one per
/// time a thread went to sleep waiting for work, or was preempted.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut sum = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        for l in status.lines() {
            if l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
            {
                sum += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Some(sum)
}

/// CPU seconds of a process, plus with `children` those of its children that ended and were
/// waited for (how the CPU of PostgreSQL backends that closed during a run is still counted:
/// it lands in the postmaster's cutime and cstime).
fn cpu_times(pid: u32, children: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14, stime 15, cutime 16, cstime 17.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let mut ticks = field(11)? + field(12)?;
    if children {
        ticks += field(13)? + field(14)?;
    }
    Some(ticks / clock_ticks())
}

/// Resident memory of a process, in KiB (VmRSS of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Threads of a process (Threads: of /proc/PID/status).
pub fn threads(pid: u32) -> Option<u64> {
    status_field(pid, "Threads:")
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The machine's CPU time so far, in seconds summed over all cores: (busy, total).
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is already counted in user).
    let total: f64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    let hz = clock_ticks();
    Some(((total - idle) / hz, total / hz))
}

/// The ids of the processes in /proc now (None when /proc cannot be read).
fn process_ids() -> Option<impl Iterator<Item = u32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(
        dir.flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())),
    )
}

/// CPU seconds used so far by every process whose command name is `comm` (e.g. "postgres": the
/// database's backends, when it runs on this machine; every cluster on the machine counts),
/// including their children that have ended.
pub fn cpu_seconds_of_command(comm: &str) -> Option<f64> {
    let mut sum = 0.0;
    let mut found = false;
    for pid in process_ids()? {
        let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if c.trim_end() == comm {
            if let Some(s) = cpu_times(pid, true) {
                sum += s;
                found = true;
            }
        }
    }
    found.then_some(sum)
}

/// The pid of the process listening on TCP `port` on this machine, found through /proc/net/tcp
/// and the processes' file descriptors (needs the right to read them: same user or root).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some(p) = f[1].rsplit(':').next() else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for pid in process_ids()? {
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if let Some(t) = target.to_str() {
                    if inodes.iter().any(|i| i == t) {
                        return Some(pid);
                    }
                }
            }
        }
    }
    None
}

/// CPU and memory of the relay process (when known) and of the machine, at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub relay_cpu: Option<f64>,
    pub relay_rss_kib: Option<u64>,
    pub relay_user_sys: Option<(f64, f64)>,
    pub relay_ctxsw: Option<u64>,
    pub own_cpu: Option<f64>,
    pub postgres_cpu: Option<f64>,
    pub machine: Option<(f64, f64)>,
}

impl Sample {
    pub fn take(relay_pid: Option<u32>) -> Sample {
        Sample {
            at: Instant::now(),
            relay_cpu: relay_pid.and_then(cpu_seconds),
            relay_rss_kib: relay_pid.and_then(rss_kib),
            relay_user_sys: relay_pid.and_then(user_system_seconds),
            relay_ctxsw: relay_pid.and_then(context_switches),
            own_cpu: cpu_seconds(std::process::id()),
            postgres_cpu: cpu_seconds_of_command("postgres"),
            machine: machine_cpu_seconds(),
        }
    }
}

/// What was used between two samples.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub wall_s: f64,
    /// CPU seconds of the relay process.
    pub relay_cpu_s: Option<f64>,
    /// Of that, as a percentage of one core.
    pub relay_core_pct: Option<f64>,
    /// Of that, the part spent in the kernel (system time), as a percentage of one core.
    pub relay_sys_pct: Option<f64>,
    /// Context switches of the relay's threads per second.
    pub relay_ctxsw_per_s: Option<f64>,
    pub own_core_pct: Option<f64>,
    pub postgres_core_pct: Option<f64>,
    /// The whole machine's busy time, as a percentage of all its cores.
    pub machine_busy_pct: Option<f64>,
    pub relay_rss_kib_before: Option<u64>,
    pub relay_rss_kib_after: Option<u64>,
}

pub fn usage(a: &Sample, b: &Sample) -> Usage {
    let wall_s = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let pct = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some((y - x).max(0.0) / wall_s * 100.0),
        _ => None,
    };
    Usage {
        wall_s,
        relay_cpu_s: match (a.relay_cpu, b.relay_cpu) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        },
        relay_core_pct: pct(a.relay_cpu, b.relay_cpu),
        relay_sys_pct: pct(a.relay_user_sys.map(|x| x.1), b.relay_user_sys.map(|x| x.1)),
        relay_ctxsw_per_s: match (a.relay_ctxsw, b.relay_ctxsw) {
            (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 / wall_s),
            _ => None,
        },
        own_core_pct: pct(a.own_cpu, b.own_cpu),
        postgres_core_pct: pct(a.postgres_cpu, b.postgres_cpu),
        machine_busy_pct: match (a.machine, b.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) / (t1 - t0) * 100.0),
            _ => None,
        },
        relay_rss_kib_before: a.relay_rss_kib,
        relay_rss_kib_after: b.relay_rss_kib,
    }
}

/// The parent pid of a process (field 4 of /proc/PID/stat).
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU of one PostgreSQL cluster on this machine: its postmaster and every process whose
/// parent is the postmaster (backends, checkpointer, WAL writer, autovacuum, ...), plus the
/// postmaster's cutime and cstime, which hold the CPU of the children that ended and were reaped
/// (backends that closed during a run). Other clusters on the machine are not counted.
///
/// The postmaster is found from any backend's pid (`select pg_backend_pid()`): a backend's
/// parent is always the postmaster. Needs /proc access to the cluster's processes (same user or
/// root), i.e. the database on this machine.
#[derive(Debug, Clone, Copy)]
pub struct Cluster {
    pub postmaster: u32,
}

impl Cluster {
    pub fn from_backend(backend_pid: u32) -> Option<Cluster> {
        let postmaster = parent_pid(backend_pid)?;
        // Sanity check: the postmaster's command is postgres (not a pooler or a container shim).
        let comm = std::fs::read_to_string(format!("/proc/{postmaster}/comm")).ok()?;
        (comm.trim_end() == "postgres").then_some(Cluster { postmaster })
    }

    /// CPU seconds used so far by the cluster (see the type's comment).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let mut sum = cpu_times(self.postmaster, true)?;
        for pid in process_ids()? {
            if pid != self.postmaster && parent_pid(pid) == Some(self.postmaster) {
                // A backend that ends between the two reads is missed here but shows up in
                // the postmaster's cutime at the next sample: the error is one sample's worth.
                sum += cpu_times(pid, false).unwrap_or(0.0);
            }
        }
        Some(sum)
    }
}

/// Parent pid and CPU seconds (user + system) of a process, from one read of /proc/PID/stat.
fn parent_and_cpu(pid: u32) -> Option<(u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((ppid, ticks / clock_ticks()))
}

/// The process title PostgreSQL gives an auxiliary process (`postgres: logger`, `postgres:
/// walwriter`, ...), from /proc/PID/cmdline, for processes pg_stat_activity does not list.
pub fn process_title(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(text.trim().to_owned())
}

/// One reading of a cluster's processes (see [`Cluster::processes`]).
#[derive(Debug, Clone)]
pub struct ClusterProcesses {
    /// The postmaster's own CPU seconds.
    pub postmaster_own: f64,
    /// CPU seconds of the postmaster's children that ended and were reaped (cutime + cstime).
    pub reaped: f64,
    /// (pid, CPU seconds so far) of every live child of the postmaster.
    pub children: Vec<(u32, f64)>,
}

impl ClusterProcesses {
    /// The cluster's CPU so far, as [`Cluster::cpu_seconds`] counts it.
    pub fn total(&self) -> f64 {
        self.postmaster_own + self.reaped + self.children.iter().map(|c| c.1).sum::<f64>()
    }
}

impl Cluster {
    /// The cluster's processes and their CPU so far, one by one (where [`Cluster::cpu_seconds`]
    /// gives only the sum): for the breakdown of a run's CPU by process.
    pub fn processes(&self) -> Option<ClusterProcesses> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.postmaster)).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        let hz = clock_ticks();
        let postmaster_own = (field(11)? + field(12)?) / hz;
        let reaped = (field(13)? + field(14)?) / hz;
        let mut children = Vec::new();
        for pid in process_ids()? {
            if pid == self.postmaster {
                continue;
            }
            if let Some((ppid, cpu)) = parent_and_cpu(pid) {
                if ppid == self.postmaster {
                    children.push((pid, cpu));
                }
            }
        }
        Some(ClusterProcesses {
            postmaster_own,
            reaped,
            children,
        })
    }
}
