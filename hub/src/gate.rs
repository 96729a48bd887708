//! Who may sync with the hub: an enrolled, unrevoked node presenting the certificate issued to it. Also
//! keeps each node's sync statistics (last seen, sessions, refusals) for `GET /api/nodes`.

use tongban_runtime::store::Store;
use tongban_runtime::tls::PeerIdentity;
use tongban_runtime::transport::{Gate, SyncReport};

pub struct HubGate {
    pub store: Store,
}

impl Gate for HubGate {
    fn admit(&self, peer: &PeerIdentity) -> Result<(), String> {
        let record = self
            .store
            .county()
            .node_record(&peer.code)
            .map_err(|e| format!("hub storage error: {e}"))?
            .ok_or_else(|| format!("node {} is not enrolled at this hub", peer.code))?;
        if record.revoked {
            return Err(format!("node {} has been revoked by the county", peer.code));
        }
        if record.serial != peer.serial {
            return Err(format!(
                "certificate {} is not the one issued to node {}",
                peer.serial, peer.code
            ));
        }
        if record.tier != peer.tier {
            return Err(format!("node {} is enrolled with another tier", peer.code));
        }
        Ok(())
    }

    fn record(&self, peer: &PeerIdentity, outcome: &Result<SyncReport, String>) {
        let now = tongban_runtime::clock::beijing_now().to_rfc3339();
        if let Ok(report) = outcome {
            for r in &report.refused {
                tracing::warn!(node = %peer.code, subject = %r.subject, reason = %r.reason, "refused from node");
            }
        }
        let updated = self.store.county().update_node(&peer.code, |rec| {
            rec.last_seen = Some(now.clone());
            rec.sessions += 1;
            match outcome {
                Ok(report) => {
                    rec.refusals += report.refused.len() as u64;
                    rec.last_refusal = report.refused.first().map(|r| {
                        let more = report.refused.len() - 1;
                        let and_more = if more > 0 {
                            format!(" (+{more})")
                        } else {
                            String::new()
                        };
                        format!("{}: {}{and_more}", r.subject, r.reason)
                    });
                    rec.pending = u64::from(report.peer_pending.unwrap_or(0));
                    if let Some(ms) = report.clock_skew_ms {
                        rec.clock_skew_s = Some(ms / 1000);
                    }
                    rec.last_error = None;
                }
                Err(e) => {
                    rec.failed_sessions += 1;
                    rec.last_error = Some(e.clone());
                }
            }
        });
        if let Err(e) = updated {
            tracing::error!(node = %peer.code, error = %e, "cannot record sync session");
        }
        // A township's report of its villages' links (already limited to its scope by the session).
        if let Ok(report) = outcome {
            for link in &report.peer_links {
                let updated = self.store.county().update_node(&link.code, |rec| {
                    if rec.last_seen.as_deref() < Some(link.last_seen.as_str()) {
                        rec.last_seen = Some(link.last_seen.clone());
                    }
                    rec.via = Some(peer.code.clone());
                    rec.pending = u64::from(link.pending);
                    rec.relayed_sessions = u64::from(link.sessions);
                    rec.relayed_refusals = u64::from(link.refusals);
                });
                if let Err(e) = updated {
                    tracing::error!(node = %link.code, error = %e, "cannot record relayed link");
                }
            }
        }
    }
}
