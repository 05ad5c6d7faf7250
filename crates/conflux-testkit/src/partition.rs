//! Network partitions between nodes of a test cluster, made of real packet drops: an nftables
//! table that drops every packet between one node's loopback address and the others'.
//!
//! Each node of a partitionable cluster listens on a loopback address of its own and sends
//! its Raft traffic from it (see `Cluster::start_partitionable`), so the rules select exactly
//! the node-to-node traffic of that cluster; clients connect from 127.0.0.1 and are not
//! affected. Needs root and the `nft` tool (Debian `nftables`, installed by
//! `scripts/setup.sh`). Every table is named after the test process; tables left behind by a
//! test process that died are removed by the next partition.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use nix::sys::signal::kill;
use nix::unistd::Pid;

const TABLE_PREFIX: &str = "conflux_test_";

/// The second and third bytes of a new cluster's loopback addresses: distinct for each
/// cluster of this process and, through the process id, most likely across processes.
pub(crate) fn cluster_subnet() -> (u8, u8) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let a = 100 + (std::process::id() % 150) as u8;
    let b = 1 + (n % 250) as u8;
    (a, b)
}

/// A partition in force; healed when [`Partition::heal`] is called or when dropped.
#[derive(Debug)]
pub struct Partition {
    table: String,
    healed: bool,
}

fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "running nft (Debian package nftables, installed by scripts/setup.sh; needs root)",
        )?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft failed: {}\nscript:\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn ip_set(ips: &[IpAddr]) -> String {
    let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    format!("{{ {} }}", list.join(", "))
}

/// Deletes the tables of test processes that are gone.
fn remove_leftovers() {
    let Ok(out) = Command::new("nft").args(["list", "tables"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.strip_prefix("table ip ") else {
            continue;
        };
        let Some(rest) = name.strip_prefix(TABLE_PREFIX) else {
            continue;
        };
        let pid = rest.split('_').next().and_then(|p| p.parse::<i32>().ok());
        if let Some(pid) = pid
            && kill(Pid::from_raw(pid), None).is_err()
        {
            let _ = nft(&format!("delete table ip {name}\n"));
        }
    }
}

impl Partition {
    /// Drops every packet between `isolated` and any of `others`, both ways.
    pub(crate) fn cut(isolated: IpAddr, others: &[IpAddr]) -> Result<Partition> {
        let others = ip_set(others);
        Partition::with_rules(&[
            format!("ip saddr {isolated} ip daddr {others} drop"),
            format!("ip saddr {others} ip daddr {isolated} drop"),
        ])
    }

    /// Drops the packets of connections from `from` to port `to_port` of `to` (both
    /// directions of those connections only; connections the other way keep working).
    pub(crate) fn cut_connections(from: IpAddr, to: IpAddr, to_port: u16) -> Result<Partition> {
        Partition::with_rules(&[
            format!("ip saddr {from} ip daddr {to} tcp dport {to_port} drop"),
            format!("ip saddr {to} ip daddr {from} tcp sport {to_port} drop"),
        ])
    }

    fn with_rules(rules: &[String]) -> Result<Partition> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        remove_leftovers();
        let table = format!(
            "{TABLE_PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // Loopback packets pass the output hook once; dropping them there cuts both the
        // connection attempts and every packet of connections already open.
        let rules: String = rules.iter().map(|r| format!("\t\t{r}\n")).collect();
        nft(&format!(
            "table ip {table} {{\n\
             \tchain cut {{\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             {rules}\
             \t}}\n\
             }}\n"
        ))?;
        Ok(Partition {
            table,
            healed: false,
        })
    }

    /// Lets packets through again.
    pub fn heal(mut self) -> Result<()> {
        self.healed = true;
        nft(&format!("delete table ip {}\n", self.table))
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if !self.healed {
            let _ = nft(&format!("delete table ip {}\n", self.table));
        }
    }
}
