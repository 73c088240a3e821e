//! The cluster's network, in one of two modes behind the same faults:
//!
//! - **namespaces** (root): each node in its own network namespace on a
//!   bridge; cuts and packet loss are iptables rules inside the namespaces
//!   (see [`namespaces`]).
//! - **loopback** (anyone): each node on its own 127.231.T.x address, and
//!   every fault done by the node's [`proxy`].
//!
//! In both, a node's advertised address (`NODE_PORT`, what peers and clients
//! dial) is its fault-injecting proxy, and `ferryd` itself listens behind it
//! on `SERVE_PORT` of the same address. The proxy tells peers apart by source
//! address: in a namespace that is the peer's own, on loopback each node is
//! told to leave from its own (`ferryd --source-ip`).
//!
//! Faults only ever touch node-to-node traffic; the harness's clients (from
//! the bridge, or 127.0.0.1) reach every node, as clients in other racks would.

pub mod namespaces;
pub mod proxy;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use namespaces::namespaces_available;
use namespaces::Namespaces;
use proxy::{LinkFault, Proxy};

/// Where peers and clients reach a node: its proxy.
pub const NODE_PORT: u16 = 7000;
/// Where `ferryd` listens, behind its proxy.
const SERVE_PORT: u16 = 7001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Namespaces,
    Loopback,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::Loopback => "loopback",
        }
    }
}

#[derive(Debug)]
pub struct Network {
    tag: u8,
    nodes: u32,
    /// Per node, in id order. Declared before `namespaces`, so they stop
    /// before the namespaces they live in are removed.
    proxies: Vec<Proxy>,
    namespaces: Option<Namespaces>,
}

impl Network {
    /// Builds the network for nodes 1..=`nodes` (at most 250); `tag` keeps
    /// this run's addresses and namespaces apart from another's.
    pub fn create(mode: Mode, tag: u8, nodes: u32) -> anyhow::Result<Self> {
        anyhow::ensure!((1..=250).contains(&nodes), "a cluster has 1 to 250 nodes, not {nodes}");
        let namespaces = match mode {
            Mode::Namespaces => Some(Namespaces::create(tag, nodes)?),
            Mode::Loopback => None,
        };
        let mut net = Self { tag, nodes, proxies: Vec::new(), namespaces };
        for node in 1..=nodes {
            let ip = net.node_ip(node);
            let namespace = net.namespaces.as_ref().map(|n| n.namespace(node));
            let proxy = Proxy::start(SocketAddr::new(ip, NODE_PORT), SocketAddr::new(ip, SERVE_PORT), namespace)?;
            net.proxies.push(proxy);
        }
        Ok(net)
    }

    pub fn mode(&self) -> Mode {
        if self.namespaces.is_some() {
            Mode::Namespaces
        } else {
            Mode::Loopback
        }
    }

    pub fn node_ip(&self, node: u32) -> IpAddr {
        match &self.namespaces {
            Some(namespaces) => IpAddr::V4(namespaces.node_ip(node)),
            None => IpAddr::V4(Ipv4Addr::new(127, 231, self.tag, node as u8)),
        }
    }

    /// The address peers and clients reach `node` at (its proxy).
    pub fn node_addr(&self, node: u32) -> String {
        SocketAddr::new(self.node_ip(node), NODE_PORT).to_string()
    }

    /// The `ferryd` arguments that put `node` on this network.
    pub fn ferryd_args(&self, node: u32) -> Vec<String> {
        let mut args = vec![
            "--listen".to_owned(),
            SocketAddr::new(self.node_ip(node), SERVE_PORT).to_string(),
            "--advertise".to_owned(),
            self.node_addr(node),
        ];
        if self.namespaces.is_some() {
            // The namespaces' veth addresses are private to this machine.
            args.push("--insecure-plaintext".to_owned());
        } else {
            // All nodes share the loopback interface: without this, every
            // connection would come from 127.0.0.1 and the proxies could not
            // tell the peers apart.
            args.extend(["--source-ip".to_owned(), self.node_ip(node).to_string()]);
        }
        args
    }

    /// The command prefix that runs a program on `node`'s network.
    pub fn exec_prefix(&self, node: u32) -> Vec<String> {
        self.namespaces.as_ref().map(|n| n.exec_prefix(node)).unwrap_or_default()
    }

    /// Stops all traffic between `a` and `b`, both ways.
    pub fn cut(&self, a: u32, b: u32) -> anyhow::Result<()> {
        if let Some(namespaces) = &self.namespaces {
            return namespaces.cut(a, b);
        }
        self.proxy(a).set(self.node_ip(b), |fault| fault.cut = true);
        self.proxy(b).set(self.node_ip(a), |fault| fault.cut = true);
        Ok(())
    }

    /// Loses a random `percent` of what `node` exchanges with the other nodes.
    pub fn lossy(&self, node: u32, percent: u32) -> anyhow::Result<()> {
        if let Some(namespaces) = &self.namespaces {
            return namespaces.lossy(node, percent);
        }
        self.on_links_of(node, |fault| fault.loss_percent = percent.min(100));
        Ok(())
    }

    /// Holds back what `node` exchanges with the other nodes by `delay`, each way.
    pub fn delay(&self, node: u32, delay: Duration) {
        self.on_links_of(node, |fault| fault.delay = delay);
    }

    /// Changes the fault on every link between `node` and another node, both
    /// ways: connections to `node` go through its proxy, connections from it
    /// through the others'.
    fn on_links_of(&self, node: u32, change: impl Fn(&mut LinkFault)) {
        for peer in (1..=self.nodes).filter(|&p| p != node) {
            self.proxy(node).set(self.node_ip(peer), &change);
            self.proxy(peer).set(self.node_ip(node), &change);
        }
    }

    fn proxy(&self, node: u32) -> &Proxy {
        &self.proxies[(node - 1) as usize]
    }

    /// Removes every network fault.
    pub fn heal(&self) -> anyhow::Result<()> {
        for proxy in &self.proxies {
            proxy.heal();
        }
        match &self.namespaces {
            Some(namespaces) => namespaces.heal(),
            None => Ok(()),
        }
    }

    /// Stops the proxies and removes the namespaces, if any.
    pub fn destroy(&mut self) {
        self.proxies.clear();
        if let Some(namespaces) = &self.namespaces {
            namespaces.destroy();
        }
    }
}
