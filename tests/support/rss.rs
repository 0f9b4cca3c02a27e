//! A child process run to completion with its own peak resident memory, as the kernel counts it:
//! `wait4` on the child's pid returns the child's `rusage`, whose `ru_maxrss` is that process's
//! high-water mark (KiB on Linux) — not the test's, and not another test's child, as
//! `getrusage(RUSAGE_CHILDREN)` would mix in.
//!
//! One subtlety makes a direct spawn imprecise: a process's `ru_maxrss` also records the memory of
//! the image it replaced at `exec`, and a child spawned by the test process is, until its `exec`, a
//! copy of the test process (`fork`) or runs in its memory (`vfork`/`posix_spawn`): its peak would
//! be at least the test's own (hundreds of MiB while proxies buffer blobs). So the measured program
//! is started by a small `sh`, which starts it in the background, writes its pid and exits; the
//! test process is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so the orphaned program becomes
//! its child and is reaped here with `wait4`. Its peak then includes only `sh`'s few hundred KiB
//! before `exec`.

use std::io::Read;
use std::process::{Command, ExitStatus, Output, Stdio};

/// What a measured run gave: its output and its peak resident set size.
pub struct Measured {
    /// Exit status, stdout and stderr.
    pub output: Output,
    /// Peak resident set size in bytes.
    pub peak_rss: u64,
    /// CPU time the program used, user + system (`wait4`'s `ru_utime` + `ru_stime`).
    pub cpu: std::time::Duration,
}

/// Runs `command` (program, arguments, environment and directory as set; stdout and stderr
/// captured) and reaps it with `wait4`, returning its output and peak RSS. Never panics on a
/// non-zero exit.
pub fn run_measured(command: &mut Command) -> Measured {
    become_subreaper();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let mut launcher = Command::new("sh");
    launcher
        .arg("-c")
        .arg("\"$@\" & echo $! > \"$CNB_RSS_PID_FILE\"")
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args())
        .env("CNB_RSS_PID_FILE", &pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => launcher.env(key, value),
            None => launcher.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        launcher.current_dir(dir);
    }
    let mut sh = launcher
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(sh.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(sh.stderr.take().expect("piped stderr")));
    let launched = sh.wait().expect("sh");
    assert!(launched.success(), "sh could not start {command:?}");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the pid file")
        .trim()
        .parse()
        .expect("a pid");
    let (status, peak_kib, cpu) = wait4(pid);
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    crate::record(command.get_program(), &output);
    Measured {
        output,
        peak_rss: peak_kib.saturating_mul(1024),
        cpu,
    }
}

/// Makes the test process the reaper of its orphaned descendants (the measured programs).
#[allow(unsafe_code)]
fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer argument and touches no memory of ours.
    let done = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(done, 0, "prctl: {}", std::io::Error::last_os_error());
}

/// Waits for the child `pid` to end: its exit status, `ru_maxrss` (KiB) and user + system time.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> (ExitStatus, u64, std::time::Duration) {
    use std::os::unix::process::ExitStatusExt as _;
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data, valid when zeroed; `status` and `usage` are live,
    // exclusive references for the duration of the call, which only writes through them.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: as above; `pid` is our own unreaped child.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::Interrupted,
            "wait4({pid}): {error}"
        );
    }
    let time = |t: libc::timeval| {
        std::time::Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + std::time::Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    (
        ExitStatus::from_raw(status),
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
        time(usage.ru_utime) + time(usage.ru_stime),
    )
}

/// `n` bytes as MiB, for messages.
pub fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}
