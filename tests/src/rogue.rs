//! A misbehaving node with a real certificate: its own sled store written directly (no web app
//! between it and its documents) and synced over real QUIC. For tests of what the county refuses.

use std::path::Path;

use automerge::AutoCommit;
use tongban_runtime::bundle::Bundle;
use tongban_runtime::store::{NodeIdentity, Store};
use tongban_runtime::transport::{self, SyncReport, TransportError, Upstream};
use tongban_shared::case::{self, Agent, IntakeContext};

pub struct Rogue {
    pub store: Store,
    /// The actor the county bound to this node at enrolment (`tls::actor_for_serial`).
    pub actor: [u8; 16],
    pub bundle: Bundle,
    upstream: Upstream,
    endpoint: quinn::Endpoint,
}

impl Rogue {
    /// A store in `dir` with the identity and certificate of `bundle`. Needs a tokio runtime.
    pub fn new(dir: &Path, bundle_path: &Path) -> anyhow::Result<Rogue> {
        let bundle = Bundle::load(bundle_path)?;
        let own = crate::node_credentials(bundle_path, &bundle)?;
        // The actor an honest node of this certificate writes with, which the county bound to it.
        let actor = tongban_runtime::tls::actor_for_serial(
            &tongban_runtime::tls::identity_of_pem(&bundle.node.cert_pem)?.serial,
        );
        let store = Store::create(
            dir,
            &NodeIdentity {
                code: bundle.code.clone(),
                name: "rogue".into(),
                tier: bundle.tier,
                parent: bundle.parent.clone(),
                upstream: Some(bundle.upstream.clone()),
                upstream_name: Some(bundle.upstream_name.clone()),
                fallback: bundle.fallback.clone(),
                created_at: "2026-11-27T09:00:00+08:00".into(),
            },
            &actor,
            tongban_shared::catalog::BUILTIN_CATALOG_JSON,
        )?;
        let upstream = Upstream {
            addr: bundle.upstream.parse()?,
            server_name: bundle.upstream_name.clone(),
            config: tongban_runtime::tls::client_config(&bundle.ca_pem, &own)?,
        };
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        Ok(Rogue {
            store,
            actor,
            bundle,
            upstream,
            endpoint,
        })
    }

    /// A well-formed new case numbered in `scope`, written by `actor`.
    pub fn case(&self, scope: &str, seq: u32, name: &str, actor: [u8; 16]) -> (String, AutoCommit) {
        case_document(scope, seq, name, actor)
    }

    /// Stores a document as it is (merged with what is stored), durably.
    pub fn put(&self, case_no: &str, doc: &mut AutoCommit) {
        let summary = case::read_case(doc)
            .unwrap_or_else(|e| panic!("{e}"))
            .summary();
        self.store
            .merge_case(case_no, |_| Ok::<_, ()>((doc.save(), summary)))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|_| panic!("merge refused"));
        self.store.flush().unwrap_or_else(|e| panic!("{e}"));
    }

    /// A raw QUIC connection to the upstream with this node's certificate, for sending whatever
    /// bytes a test likes.
    pub async fn connect(&self) -> Result<quinn::Connection, quinn::ConnectionError> {
        self.endpoint
            .connect_with(
                self.upstream.config.clone(),
                self.upstream.addr,
                &self.upstream.server_name,
            )
            .map_err(|_| quinn::ConnectionError::LocallyClosed)?
            .await
    }

    /// [`Rogue::connect`] with transport settings of the test's choosing (a peer that takes one byte
    /// of a stream and no more, say).
    pub async fn connect_with(
        &self,
        transport: quinn::TransportConfig,
    ) -> Result<quinn::Connection, quinn::ConnectionError> {
        let mut config = self.upstream.config.clone();
        config.transport_config(std::sync::Arc::new(transport));
        self.endpoint
            .connect_with(config, self.upstream.addr, &self.upstream.server_name)
            .map_err(|_| quinn::ConnectionError::LocallyClosed)?
            .await
    }

    /// One sync session with its upstream, claiming its own code as scope.
    pub async fn sync(&self) -> Result<SyncReport, TransportError> {
        self.sync_scopes(vec![self.bundle.code.clone()]).await
    }

    pub async fn sync_scopes(&self, scopes: Vec<String>) -> Result<SyncReport, TransportError> {
        transport::sync_once(
            &self.endpoint,
            &self.upstream,
            &self.store,
            scopes,
            0,
            Vec::new(),
        )
        .await
    }
}

/// A well-formed new case (as the intake form would make it) numbered `seq` in `scope`, written by
/// `actor`, at a fixed time.
pub fn case_document(scope: &str, seq: u32, name: &str, actor: [u8; 16]) -> (String, AutoCommit) {
    static CATALOG: std::sync::OnceLock<tongban_shared::catalog::Catalog> =
        std::sync::OnceLock::new();
    let catalog = CATALOG.get_or_init(|| {
        tongban_shared::catalog::Catalog::builtin().unwrap_or_else(|e| panic!("{e}"))
    });
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:30:00+08:00")
        .unwrap_or_else(|e| panic!("{e}"));
    let req: case::IntakeRequest =
        serde_json::from_value(crate::valid_case_body(name)).unwrap_or_else(|e| panic!("{e}"));
    let intake =
        case::validate_intake(catalog, &req, now.date_naive()).unwrap_or_else(|e| panic!("{e:?}"));
    let no = case::format_case_no(scope, now.date_naive(), seq);
    let (doc, _) = case::new_case_document(
        &intake,
        IntakeContext {
            case_no: &no,
            agent: Agent {
                user: "x".into(),
                name: "x".into(),
                node_code: scope.into(),
                node_name: "x".into(),
            },
            now,
            query_password: "000000",
            actor: automerge::ActorId::from(actor.as_slice()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (no, doc)
}

/// A county store (420222) in `dir/hub` where `actor` is bound to `village`, as its enrolment
/// binds it: the server side of session-level tests of what a peer may send.
pub fn county_store(dir: &Path, village: &str, actor: [u8; 16]) -> Store {
    let identity = NodeIdentity {
        code: "420222".into(),
        name: "测试县".into(),
        tier: tongban_shared::Tier::County,
        parent: None,
        upstream: None,
        upstream_name: None,
        fallback: None,
        created_at: "2026-11-01T09:00:00+08:00".into(),
    };
    let hub = Store::create(
        &dir.join("hub"),
        &identity,
        &[0x11; 16],
        tongban_shared::catalog::BUILTIN_CATALOG_JSON,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    hub.bind_actor(&actor, village)
        .unwrap_or_else(|e| panic!("{e}"));
    hub
}

/// What a session that refused cases by themselves must leave: each of `refused_nos` refused with
/// a reason containing `why` and not stored new; `held` (a case the hub had) as it was; `honest`
/// stored.
pub fn assert_refused_by_themselves(
    hub: &Store,
    refused: &[tongban_shared::sync::frame::Refusal],
    (new_no, held_no, held_before): (&str, &str, &Option<Vec<u8>>),
    honest_no: &str,
    why: &str,
) {
    for no in [new_no, held_no] {
        let r = refused.iter().find(|r| r.subject == no);
        assert!(
            r.is_some_and(|r| r.reason.contains(why)),
            "{no}: {refused:?}"
        );
    }
    let doc = |no: &str| hub.document(no).unwrap_or_else(|e| panic!("{e}"));
    assert!(doc(new_no).is_none(), "{new_no} was stored");
    assert_eq!(&doc(held_no), held_before, "{held_no} left as it was");
    assert!(doc(honest_no).is_some(), "the honest case lands");
}
