//! Clusters of real nodes in one test process: loopback sockets, RocksDB
//! in a temporary directory, the peers listed as `Formation::Peers`, for
//! the node's own tests of what only several nodes show.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{Formation, Node, NodeBuilder};
use crate::raft::{GroupId, NodeId};

/// Nodes 1..=n at free loopback addresses (bound and let go: the peer list
/// needs every address before any node starts).
pub fn peers(n: NodeId) -> BTreeMap<NodeId, String> {
    let free = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.local_addr().expect("the bound address").to_string()
    };
    (1..=n).map(|id| (id, free())).collect()
}

/// Starts node `id` of `peers` on `data_dir`, forming `data_groups`.
pub async fn start(data_dir: &Path, id: NodeId, peers: &BTreeMap<NodeId, String>, data_groups: u32) -> Node {
    NodeBuilder::new(data_dir)
        .node_id(id)
        .listen(peers[&id].clone())
        .formation(Formation::Peers(peers.clone()))
        .data_groups(data_groups)
        .start()
        .await
        .unwrap_or_else(|e| panic!("node {id} starts: {e}"))
}

/// The leader of `group` as `node` knows it, once it knows one, waiting for
/// the node to host the group and for a leader up to `within` each.
pub async fn leader_of(node: &Node, group: GroupId, within: Duration) -> Option<NodeId> {
    let hosted = tokio::time::timeout(within, async {
        loop {
            if let Some(hosted) = node.groups.get(group) {
                return hosted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let raft = hosted.await.ok()?.raft;
    let led = raft.wait(Some(within)).metrics(|m| m.current_leader.is_some(), "a leader").await.ok()?;
    led.current_leader
}
