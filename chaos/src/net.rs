//! The run's network: one Linux network namespace per node, each joined to one bridge in the
//! harness's namespace by a veth pair, so partitions and packet loss are real packet drops
//! on real interfaces, not tricks in the processes.
//!
//! Addresses are `10.<77 + n>.<s>.<node id>/24` (`n` counts the networks of this process,
//! `s` comes from its pid) with the bridge (where the harness's clients, and nothing else,
//! live) at `.254`. Faults are nftables rules inside a node's
//! namespace that name peer addresses only, so clients always reach every node that runs: a
//! partition cuts Raft traffic, not the observer. Rate limits are `tbf` on the node's side of
//! its veth. Delays are a proxy ([`crate::delay`]) in the node's namespace that an nftables
//! `redirect` sends the peers' new connections to; the connections made before are reset
//! (`ss -K`) so that the peers reconnect through it, and again when it goes.
//!
//! Everything is named after the harness's process id (`cfx-<pid>-<n>-<node>` namespaces,
//! the `cfxb<pid>x<n>` bridge, `cfxchaos-<pid>` tmpfs mounts), so [`remove_leftovers`] can tell what
//! a dead harness left behind and remove exactly that, and a live run is never touched.
//! Needs root, `ip`, `ss` (iproute2), `nft` and `tc`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::delay::{DelayProxy, DelaySpec, ProxyStats};

const NS_PREFIX: &str = "cfx-";
const BRIDGE_PREFIX: &str = "cfxb";
/// The source name of a full-disk tmpfs mount (`mount -t tmpfs <name> <dir>`).
pub const TMPFS_PREFIX: &str = "cfxchaos-";
/// Where a node's delay proxy listens, on the node's own address (no node listens there).
pub const DELAY_PROXY_PORT: u16 = 7900;

/// What a node's packet filter drops. An empty filter lets everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Packets from these addresses are dropped on the way in.
    pub drop_from: Vec<Ipv4Addr>,
    /// Packets to these addresses are dropped on the way out.
    pub drop_to: Vec<Ipv4Addr>,
    /// Drops this percentage of the packets from these addresses, at random.
    pub loss: Option<(u8, Vec<Ipv4Addr>)>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.drop_from.is_empty() && self.drop_to.is_empty() && self.loss.is_none()
    }

    fn nft_script(&self) -> String {
        let set = |ips: &[Ipv4Addr]| {
            let list: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
            format!("{{ {} }}", list.join(", "))
        };
        let mut input = String::new();
        let mut output = String::new();
        if !self.drop_from.is_empty() {
            input += &format!("\t\tip saddr {} drop\n", set(&self.drop_from));
        }
        if let Some((percent, from)) = &self.loss
            && !from.is_empty()
        {
            input += &format!(
                "\t\tip saddr {} numgen random mod 100 < {percent} drop\n",
                set(from)
            );
        }
        if !self.drop_to.is_empty() {
            output += &format!("\t\tip daddr {} drop\n", set(&self.drop_to));
        }
        format!(
            "table ip chaos {{\n\
             \tchain input {{\n\t\ttype filter hook input priority 0; policy accept;\n{input}\t}}\n\
             \tchain output {{\n\t\ttype filter hook output priority 0; policy accept;\n{output}\t}}\n\
             }}\n"
        )
    }
}

/// A node's delay fault: its proxy and the peers whose connections it gets.
#[derive(Debug)]
struct Delay {
    proxy: DelayProxy,
    peers: Vec<Ipv4Addr>,
}

/// The nftables table that sends `peers`' new connections to `port` to the delay proxy
/// (NAT happens when a connection starts; conntrack keeps it for the connection's life).
fn redirect_script(port: u16, peers: &[Ipv4Addr]) -> String {
    let list: Vec<String> = peers.iter().map(Ipv4Addr::to_string).collect();
    format!(
        "table ip chaos_delay {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority -100; policy accept;\n\
         \t\tip saddr {{ {} }} tcp dport {port} redirect to :{DELAY_PROXY_PORT}\n\
         \t}}\n\
         }}\n",
        list.join(", ")
    )
}

/// Resets the established connections of namespace `ns` from `peers` to local port `port`
/// (`ss -K`: the kernel aborts the socket and sends the peer a RST), so that the peers
/// reconnect and their new connections meet the current nftables rules.
fn reset_connections(ns: &str, port: u16, peers: &[Ipv4Addr]) -> Result<()> {
    let from: Vec<String> = peers.iter().map(|p| format!("dst {p}")).collect();
    let filter = format!("sport = :{port} and ( {} )", from.join(" or "));
    run(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "ss",
            "-K",
            "-t",
            "state",
            "established",
            &filter,
        ],
    )?;
    Ok(())
}

/// The bridge and the namespaces of one run. Removed by [`Net::destroy`] or on drop.
#[derive(Debug)]
pub struct Net {
    pid: u32,
    /// Which network of this process (tests make several at once).
    instance: u32,
    subnet: u8,
    bridge: String,
    /// The namespaces made so far, by node id, with their current filter.
    nodes: BTreeMap<u64, Filter>,
    /// The nodes whose incoming connections go through a delay proxy.
    delays: BTreeMap<u64, Delay>,
    destroyed: bool,
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} (needs root and iproute2/nftables)"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_with_stdin(program: &str, args: &[&str], stdin: &str) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    child
        .stdin
        .take()
        .context("the child's stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}\ninput:\n{stdin}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Kills every process in namespace `ns` (none of them is ours to keep: a namespace holds
/// only the nodes of the run that made it) and deletes the namespace.
fn delete_namespace(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// Removes what harness processes that are gone left behind: their namespaces (and the node
/// processes still in them), bridges and tmpfs mounts. Returns what it removed.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    let dead = |pid: &str| pid.parse::<i32>().is_ok_and(|p| !alive(p));
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if let Some(rest) = name.strip_prefix(NS_PREFIX)
                && dead(rest.split('-').next().unwrap_or_default())
            {
                delete_namespace(name);
                removed.push(format!("namespace {name}"));
            }
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show", "type", "bridge"]) {
        for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            if let Some(rest) = name.strip_prefix(BRIDGE_PREFIX)
                && dead(rest.split('x').next().unwrap_or_default())
            {
                let _ = run("ip", &["link", "del", name]);
                removed.push(format!("bridge {name}"));
            }
        }
    }
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        for line in mounts.lines() {
            let mut fields = line.split_whitespace();
            let (Some(source), Some(target)) = (fields.next(), fields.next()) else {
                continue;
            };
            if let Some(pid) = source.strip_prefix(TMPFS_PREFIX)
                && dead(pid)
            {
                let _ = run("umount", &["-l", target]);
                removed.push(format!("tmpfs {target}"));
            }
        }
    }
    removed
}

impl Net {
    /// Makes the bridge (up, with the harness's address) after removing leftovers of dead
    /// runs.
    pub fn create() -> Result<Net> {
        for what in remove_leftovers() {
            eprintln!("removed a leftover of an earlier run: {what}");
        }
        static INSTANCES: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let net = Net {
            pid,
            instance,
            // Distinct for runs side by side in all but unlucky cases; clients only ever talk
            // to their own bridge, so a clash shows as a failed start, not as wrong results.
            subnet: (pid % 250) as u8,
            bridge: format!("{BRIDGE_PREFIX}{pid}x{instance}"),
            nodes: BTreeMap::new(),
            delays: BTreeMap::new(),
            destroyed: false,
        };
        run("ip", &["link", "add", &net.bridge, "type", "bridge"])?;
        let host = format!("{}/24", net.host_ip());
        run("ip", &["addr", "add", &host, "dev", &net.bridge])?;
        run("ip", &["link", "set", &net.bridge, "up"])?;
        Ok(net)
    }

    /// The address the harness's clients use (on the bridge).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.ip(254)
    }

    pub fn ip(&self, node: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, 77 + (self.instance % 50) as u8, self.subnet, node as u8)
    }

    pub fn namespace(&self, node: u64) -> String {
        format!("{NS_PREFIX}{}-{}-{node}", self.pid, self.instance)
    }

    /// The source name to mount a full-disk tmpfs with (see [`remove_leftovers`]).
    pub fn tmpfs_source(&self) -> String {
        format!("{TMPFS_PREFIX}{}", self.pid)
    }

    /// Makes node `node`'s namespace: loopback up, a veth pair to the bridge, its address.
    pub fn add_node(&mut self, node: u64) -> Result<()> {
        if !(1..=250).contains(&node) {
            bail!("node ids of a chaos run are 1..=250, not {node}");
        }
        static VETHS: AtomicU32 = AtomicU32::new(0);
        let ns = self.namespace(node);
        // Interface names have at most 15 bytes: the pid and a number of this process.
        let host_end = format!("cfxv{}.{}", self.pid, VETHS.fetch_add(1, Ordering::Relaxed));
        run("ip", &["netns", "add", &ns])?;
        self.nodes.insert(node, Filter::default());
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run("ip", &["link", "set", &host_end, "master", &self.bridge])?;
        run("ip", &["link", "set", &host_end, "up"])?;
        let addr = format!("{}/24", self.ip(node));
        run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// Replaces node `node`'s packet filter.
    pub fn set_filter(&mut self, node: u64, filter: Filter) -> Result<()> {
        let ns = self.namespace(node);
        let current = self
            .nodes
            .get_mut(&node)
            .with_context(|| format!("node {node} has no namespace"))?;
        if *current == filter {
            return Ok(());
        }
        // Delete and add in one transaction: no moment without the old or the new rules.
        let mut script = String::new();
        if !current.is_empty() {
            script += "delete table ip chaos\n";
        }
        if !filter.is_empty() {
            script += &filter.nft_script();
        }
        run_with_stdin("ip", &["netns", "exec", &ns, "nft", "-f", "-"], &script)?;
        *current = filter;
        Ok(())
    }

    /// Removes every node's filter.
    pub fn heal_all(&mut self) -> Result<()> {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.set_filter(id, Filter::default())?;
        }
        Ok(())
    }

    /// Limits what node `node` sends to `kbit` kbit/s (`tbf`: a queue, then drops), or lifts
    /// the limit with `None`.
    pub fn set_rate(&self, node: u64, kbit: Option<u32>) -> Result<()> {
        let ns = self.namespace(node);
        match kbit {
            Some(k) => {
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &ns,
                        "tc",
                        "qdisc",
                        "replace",
                        "dev",
                        "eth0",
                        "root",
                        "tbf",
                        "rate",
                        &format!("{k}kbit"),
                        "burst",
                        "16kb",
                        "latency",
                        "300ms",
                    ],
                )?;
            }
            None => {
                let _ = run(
                    "ip",
                    &[
                        "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
                    ],
                );
            }
        }
        Ok(())
    }

    /// Sends the connections from `peers` to `port` of node `node` through a delay proxy in
    /// its namespace: starts the proxy, adds the redirect, then resets the connections made
    /// before it, which would otherwise go on directly.
    pub fn start_delay(
        &mut self,
        node: u64,
        port: u16,
        peers: &[Ipv4Addr],
        spec: DelaySpec,
    ) -> Result<()> {
        if !self.nodes.contains_key(&node) {
            bail!("node {node} has no namespace");
        }
        if self.delays.contains_key(&node) {
            bail!("node {node} is already delayed");
        }
        if peers.is_empty() {
            bail!("a delay needs peers to delay");
        }
        let ns = self.namespace(node);
        let ip = self.ip(node);
        // The proxy listens before the redirect exists: no redirected connection is refused.
        let proxy = DelayProxy::start(
            &ns,
            SocketAddr::from((ip, DELAY_PROXY_PORT)),
            SocketAddr::from((ip, port)),
            spec,
        )?;
        // (On an error from here on, dropping the proxy stops it.)
        run_with_stdin(
            "ip",
            &["netns", "exec", &ns, "nft", "-f", "-"],
            &redirect_script(port, peers),
        )?;
        self.delays.insert(
            node,
            Delay {
                proxy,
                peers: peers.to_vec(),
            },
        );
        reset_connections(&ns, port, peers)
    }

    /// What node `node`'s delay proxy has passed on so far, if it has one.
    pub fn delay_stats(&self, node: u64) -> Option<ProxyStats> {
        self.delays.get(&node).map(|d| d.proxy.stats())
    }

    /// Ends node `node`'s delay: removes the redirect, resets the peers' connections to the
    /// proxy (they reconnect directly) and stops the proxy. Returns what it passed on.
    pub fn stop_delay(&mut self, node: u64) -> Result<Option<ProxyStats>> {
        let Some(delay) = self.delays.remove(&node) else {
            return Ok(None);
        };
        let ns = self.namespace(node);
        let removed = run_with_stdin(
            "ip",
            &["netns", "exec", &ns, "nft", "-f", "-"],
            "delete table ip chaos_delay\n",
        );
        let reset = reset_connections(&ns, DELAY_PROXY_PORT, &delay.peers);
        // Stopping closes whatever the reset missed, and every connection to the node.
        let stats = delay.proxy.stop();
        removed?;
        reset?;
        Ok(Some(stats))
    }

    /// Ends every node's delay; returns what the proxies passed on, together.
    pub fn stop_all_delays(&mut self) -> Result<ProxyStats> {
        let ids: Vec<u64> = self.delays.keys().copied().collect();
        let mut total = ProxyStats::default();
        let mut first_error = None;
        for id in ids {
            match self.stop_delay(id) {
                Ok(stats) => total = total + stats.unwrap_or_default(),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// Mounts a tmpfs of `mib` MiB at `dir` (a node's data directory, for the full-disk
    /// fault); unmounted by [`Net::destroy`]'s caller through [`unmount`].
    pub fn mount_small_disk(&self, dir: &Path, mib: u32) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let target = dir
            .to_str()
            .context("a data directory path that is UTF-8")?;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                &self.tmpfs_source(),
                target,
            ],
        )?;
        Ok(())
    }

    /// Kills what runs in the namespaces, deletes them and the bridge, and unmounts this
    /// run's tmpfs mounts. Idempotent.
    pub fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        // The proxies first: their threads live in the namespaces about to go.
        self.delays.clear();
        for node in self.nodes.keys() {
            delete_namespace(&self.namespace(*node));
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
            let source = self.tmpfs_source();
            for line in mounts.lines() {
                let mut fields = line.split_whitespace();
                if fields.next() == Some(source.as_str())
                    && let Some(target) = fields.next()
                {
                    let _ = run("umount", &["-l", target]);
                }
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_becomes_one_nft_table_with_input_and_output_rules() {
        let a = Ipv4Addr::new(10, 77, 1, 2);
        let b = Ipv4Addr::new(10, 77, 1, 3);
        let f = Filter {
            drop_from: vec![a],
            drop_to: vec![a, b],
            loss: Some((20, vec![b])),
        };
        let script = f.nft_script();
        assert!(script.contains("ip saddr { 10.77.1.2 } drop"), "{script}");
        assert!(
            script.contains("ip daddr { 10.77.1.2, 10.77.1.3 } drop"),
            "{script}"
        );
        assert!(
            script.contains("ip saddr { 10.77.1.3 } numgen random mod 100 < 20 drop"),
            "{script}"
        );
        assert!(Filter::default().is_empty() && !f.is_empty());
    }

    #[test]
    fn a_delay_redirects_the_peers_new_connections_to_the_proxy() {
        let peers = [Ipv4Addr::new(10, 77, 1, 2), Ipv4Addr::new(10, 77, 1, 3)];
        let script = redirect_script(7000, &peers);
        assert!(
            script.contains("type nat hook prerouting priority -100;"),
            "{script}"
        );
        assert!(
            script.contains("ip saddr { 10.77.1.2, 10.77.1.3 } tcp dport 7000 redirect to :7900\n"),
            "{script}"
        );
    }
}
