//! `AuthenticateLayer`: who is calling, settled before any service runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::Service;
use tonic::Status;
use tower_layer::Layer;

use super::cluster_id::{ClusterIdentity, CLUSTER_ID_HEADER};
use super::grants::{sha256_hex, Grants, Principal};
use super::AUTHORIZATION;

/// Paths anyone may call: load balancers and probes carry no token.
const OPEN_PREFIX: &str = "/grpc.health.v1.Health/";
/// The services only peers may call (Raft, forwarded group calls, testing).
const INTERNAL_PREFIX: &str = "/ferry.internal.v1.";

/// Checks each call's token; see the module docs of `security`.
#[derive(Debug, Clone, Default)]
pub struct AuthenticateLayer {
    /// Client tokens; `None`: the public services take anyone.
    grants: Option<Arc<Grants>>,
    /// SHA-256 of the peer token; `None`: the internal services take anyone.
    peer_hash: Option<Arc<str>>,
    /// This node's cluster: calls from another cluster's nodes are refused.
    cluster: ClusterIdentity,
}

impl AuthenticateLayer {
    pub fn new(grants: Option<Arc<Grants>>, peer_token: Option<&str>) -> Self {
        Self { grants, peer_hash: peer_token.map(|t| Arc::from(sha256_hex(t))), cluster: ClusterIdentity::default() }
    }

    /// Refuses calls whose caller names a cluster other than `cluster`.
    pub fn cluster(mut self, cluster: ClusterIdentity) -> Self {
        self.cluster = cluster;
        self
    }

    /// Who presented `secret`, if anyone known.
    fn principal(&self, secret: &str) -> Option<Principal> {
        if self.peer_hash.as_deref().is_some_and(|hash| *hash == sha256_hex(secret)) {
            return Some(Principal::Peer);
        }
        self.grants.as_ref()?.find(secret).map(Principal::Token)
    }

    /// The principal a call to `path` runs as (`None`: nothing to check),
    /// or the status it is refused with: its token judged first (a call
    /// refused for its token is not told this node's cluster id, though the
    /// id is no secret: `cluster status` shows it), then the cluster it
    /// names (`cluster`, the `ferry-cluster-id` it carries).
    fn admit(
        &self,
        path: &str,
        authorization: Option<&str>,
        cluster: Option<&[u8]>,
    ) -> Result<Option<Principal>, Status> {
        let principal = self.judge(path, authorization)?;
        self.cluster.check(cluster, path.starts_with(INTERNAL_PREFIX))?;
        Ok(principal)
    }

    /// The principal the call runs as by its token alone.
    fn judge(&self, path: &str, authorization: Option<&str>) -> Result<Option<Principal>, Status> {
        if path.starts_with(OPEN_PREFIX) {
            return Ok(None);
        }
        let internal = path.starts_with(INTERNAL_PREFIX);
        // The peer token guards the internal services, client tokens the
        // public ones: with only a peer token, clients need none.
        let checked = if internal { self.peer_hash.is_some() } else { self.grants.is_some() };
        if !checked {
            return Ok(None);
        }
        let secret = authorization.and_then(|value| value.strip_prefix("Bearer ")).map(str::trim);
        let Some(secret) = secret else {
            return Err(Status::unauthenticated("this cluster needs a token: `authorization: Bearer <token>`"));
        };
        match self.principal(secret) {
            Some(Principal::Token(grant)) if internal => Err(Status::permission_denied(format!(
                "token {:?} is not a peer; {path} is for the cluster's nodes",
                grant.name
            ))),
            Some(principal) => Ok(Some(principal)),
            None => Err(Status::unauthenticated("the token is not known to this cluster")),
        }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated { inner, layer: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    layer: AuthenticateLayer,
}

impl<S> Service<Request<Body>> for Authenticated<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let headers = request.headers();
        let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let cluster = headers.get(CLUSTER_ID_HEADER).map(|v| v.as_bytes());
        match self.layer.admit(request.uri().path(), authorization, cluster) {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                tracing::info!(method = request.uri().path(), reason = status.message(), "call refused");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::grants::sha256_hex;

    fn layer() -> AuthenticateLayer {
        let text = format!("[[token]]\nname = \"app\"\nsha256 = \"{}\"\npublish = [\"t\"]\n", sha256_hex("app-secret"));
        let path = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(path.path(), text).expect("write");
        AuthenticateLayer::new(Some(Arc::new(Grants::load(path.path()).expect("load"))), Some("peer-secret"))
    }

    #[test]
    fn calls_are_judged_by_their_token_and_path() {
        let layer = layer();
        let publish = "/ferry.v1.Publisher/Publish";
        let raft = "/ferry.internal.v1.Raft/AppendEntries";
        assert!(matches!(layer.judge(publish, Some("Bearer app-secret")), Ok(Some(Principal::Token(_)))));
        assert!(matches!(layer.judge(publish, Some("Bearer peer-secret")), Ok(Some(Principal::Peer))));
        assert!(matches!(layer.judge(raft, Some("Bearer peer-secret")), Ok(Some(Principal::Peer))));
        let code = |r: Result<Option<Principal>, Status>| r.expect_err("refused").code();
        assert_eq!(code(layer.judge(publish, None)), tonic::Code::Unauthenticated);
        assert_eq!(code(layer.judge(publish, Some("Bearer nope"))), tonic::Code::Unauthenticated);
        assert_eq!(code(layer.judge(publish, Some("app-secret"))), tonic::Code::Unauthenticated, "Bearer is required");
        assert_eq!(code(layer.judge(raft, Some("Bearer app-secret"))), tonic::Code::PermissionDenied);
        assert_eq!(code(layer.judge(raft, None)), tonic::Code::Unauthenticated);
        assert!(matches!(layer.judge("/grpc.health.v1.Health/Check", None), Ok(None)), "probes need no token");
        let peers_only = AuthenticateLayer::new(None, Some("peer-secret"));
        assert!(matches!(peers_only.judge(publish, None), Ok(None)), "clients need no token without an auth file");
        assert_eq!(code(peers_only.judge(raft, None)), tonic::Code::Unauthenticated);
        let open = AuthenticateLayer::default();
        assert!(matches!(open.judge(raft, None), Ok(None)) && matches!(open.judge(publish, None), Ok(None)));
    }

    #[test]
    fn a_call_naming_another_cluster_is_refused_after_its_token_is_judged() {
        let cluster = ClusterIdentity::default();
        cluster.set("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").expect("set");
        let layer = layer().cluster(cluster);
        let raft = "/ferry.internal.v1.Raft/AppendEntries";
        let (ours, theirs) =
            (Some(&b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]), Some(&b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"[..]));
        let peer = Some("Bearer peer-secret");
        assert!(matches!(layer.admit(raft, peer, ours), Ok(Some(Principal::Peer))));
        assert!(matches!(layer.admit(raft, peer, None), Ok(Some(Principal::Peer))), "a node without an id");
        let code = |r: Result<Option<Principal>, Status>| r.expect_err("refused").code();
        assert_eq!(code(layer.admit(raft, peer, theirs)), tonic::Code::FailedPrecondition);
        assert_eq!(code(layer.admit(raft, None, theirs)), tonic::Code::Unauthenticated, "the token first");
    }
}
