//! The description of the machine and build a result was measured on, stored with every
//! JSON report: figures mean nothing without it.

use std::process::Command;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub kernel: String,
    pub open_files_limit: u64,
    /// `git rev-parse --short HEAD` of the checkout the tool ran in (or was built in).
    pub commit: Option<String>,
    pub conflux_binary: Option<String>,
    pub etcd_version: Option<String>,
    /// When the run started, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date_utc: String,
}

impl Machine {
    pub fn describe(open_files_limit: u64) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".into(), |(_, v)| v.trim().to_owned());
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map_or("unknown".into(), |v| v.trim_matches('"').to_owned());
        // The checkout the tool runs in, else the one its binary was built in.
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()));
        let commit = [Some(std::path::PathBuf::from(".")), exe_dir]
            .into_iter()
            .flatten()
            .find_map(|dir| {
                Command::new("git")
                    .arg("-C")
                    .arg(dir)
                    .args(["rev-parse", "--short", "HEAD"])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            });
        Machine {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: (memory_kib / 1048576.0 * 10.0).round() / 10.0,
            os,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            open_files_limit,
            commit,
            conflux_binary: std::env::var("CONFLUX_BIN").ok(),
            etcd_version: crate::targets::etcd::version(),
            date_utc: utc_now(),
        }
    }

    /// One line for report headers.
    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {} GiB, {}, commit {}, {}",
            self.cores,
            self.cpu_model,
            self.memory_gib,
            self.os,
            self.commit.as_deref().unwrap_or("unknown"),
            self.date_utc
        )
    }
}

/// The current time in UTC as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (days to civil date after
/// Howard Hinnant's algorithm).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn this_machine_is_described() {
        let m = Machine::describe(1024);
        assert!(m.cores > 0);
        assert!(m.memory_gib > 0.0);
        assert!(m.line().contains("cores"));
    }
}
