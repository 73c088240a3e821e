//! Namespace mode (root): one network namespace per node on a bridge, so
//! faults can be put between nodes with iptables inside each namespace.
//!
//! ```text
//!   harness (root namespace) ── bridge fj<T>br 10.231.T.254
//!        ├── veth ── netns fj<T>n1: eth0 10.231.T.1   ferryd 1
//!        ├── veth ── netns fj<T>n2: eth0 10.231.T.2   ferryd 2
//!        └── …
//! ```
//!
//! The harness's faults only ever cut node-to-node traffic; its clients
//! reach every node through the bridge, as clients in other racks would.
//! [`Namespaces::isolate`] cuts a namespace off from everything instead: the
//! black-box tests run a mirror in one and cut its link to both clusters.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context};

#[derive(Debug)]
pub struct Namespaces {
    /// Distinguishes this run's interfaces and namespaces from another's.
    tag: u8,
    nodes: u32,
}

impl Namespaces {
    /// Builds the bridge and one namespace per node (ids 1..=nodes),
    /// replacing leftovers of an earlier run with the same tag.
    pub fn create(tag: u8, nodes: u32) -> anyhow::Result<Self> {
        let net = Self { tag, nodes };
        net.destroy();
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", net.hub_ip()), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for node in 1..=nodes {
            let (ns, host_end, node_end) = (net.namespace(node), net.veth(node, 'h'), net.veth(node, 'n'));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &host_end, "type", "veth", "peer", "name", &node_end])?;
            ip(&["link", "set", &host_end, "master", &bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
            ip(&["link", "set", &node_end, "netns", &ns])?;
            ip(&["-n", &ns, "link", "set", &node_end, "name", "eth0"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", net.node_ip(node)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    pub fn node_ip(&self, node: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.tag, node as u8)
    }

    /// The bridge's address in the root namespace: what programs in the
    /// namespaces reach the root namespace at.
    pub fn hub_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.tag, 254)
    }

    pub fn namespace(&self, node: u32) -> String {
        format!("fj{}n{node}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("fj{}br", self.tag)
    }

    fn veth(&self, node: u32, end: char) -> String {
        format!("fj{}{end}{node}", self.tag)
    }

    /// The command prefix that runs a program inside a node's namespace. `ip
    /// netns exec` execs the program, so the child's PID is the program's.
    pub fn exec_prefix(&self, node: u32) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.namespace(node)]
    }

    /// Drops every packet between `a` and `b`, both ways, inside both namespaces.
    pub fn cut(&self, a: u32, b: u32) -> anyhow::Result<()> {
        for (here, there) in [(a, b), (b, a)] {
            let ns = self.namespace(here);
            let peer = self.node_ip(there).to_string();
            iptables(&ns, &["-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
            iptables(&ns, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Drops every packet `node` sends or receives on anything but its
    /// loopback, as a cut WAN link does: nothing is refused or reset, open
    /// connections stay open and go silent, new ones time out.
    pub fn isolate(&self, node: u32) -> anyhow::Result<()> {
        let ns = self.namespace(node);
        iptables(&ns, &["-A", "INPUT", "!", "-i", "lo", "-j", "DROP"])?;
        iptables(&ns, &["-A", "OUTPUT", "!", "-o", "lo", "-j", "DROP"])
    }

    /// Drops a random `percent` of the packets a node sends to and receives
    /// from the other nodes.
    pub fn lossy(&self, node: u32, percent: u32) -> anyhow::Result<()> {
        let ns = self.namespace(node);
        let probability = format!("{:.3}", f64::from(percent.min(100)) / 100.0);
        for peer in (1..=self.nodes).filter(|&p| p != node) {
            let peer = self.node_ip(peer).to_string();
            for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
                let rule = ["-A", chain, dir, &peer, "-m", "statistic", "--mode", "random", "--probability"];
                let mut args: Vec<&str> = rule.to_vec();
                args.extend([probability.as_str(), "-j", "DROP"]);
                iptables(&ns, &args)?;
            }
        }
        Ok(())
    }

    /// Removes every network fault.
    pub fn heal(&self) -> anyhow::Result<()> {
        for node in 1..=self.nodes {
            iptables(&self.namespace(node), &["-F"])?;
        }
        Ok(())
    }

    /// Removes the namespaces and the bridge (their veths go with them).
    pub fn destroy(&self) {
        for node in 1..=self.nodes {
            let _ = ip(&["netns", "del", &self.namespace(node)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.destroy();
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args)
}

fn iptables(namespace: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["netns", "exec", namespace, "iptables", "-w"];
    full.extend_from_slice(args);
    run("ip", &full)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Whether this process may build namespaces (root with `ip` and `iptables`).
pub fn namespaces_available() -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let tools = ["ip", "iptables"].iter().all(|tool| {
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
    });
    root && tools
}
