//! `tillmesh status`: asks a running till for its status (typed, over reqwest) and prints it
//! for a human.

use std::net::SocketAddr;
use std::time::Duration;
use tillmesh::till::StatusView;

/// How long the CLI waits for a till.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Prints the status of the till at `addr`.
pub(super) fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s = rt.block_on(fetch(addr))?;
    print!("{}", render(&s));
    Ok(())
}

/// `GET /api/v1/status` of the till at `addr`: a till's `{"error","message"}` answer, a
/// refused connection or a timeout becomes one human line.
async fn fetch(addr: SocketAddr) -> anyhow::Result<StatusView> {
    // reqwest's TLS stack needs the process's one crypto provider, even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()?;
    let resp = http
        .get(format!("http://{addr}/api/v1/status"))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                anyhow::anyhow!(
                    "till at {addr} did not answer within {} s",
                    TIMEOUT.as_secs()
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot reach a till at {addr}"))
            }
        })?;
    let status = resp.status();
    if !status.is_success() {
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        anyhow::bail!(
            "till at {addr} answered {status}: {}",
            body["message"].as_str().unwrap_or("no message")
        );
    }
    resp.json::<StatusView>()
        .await
        .map_err(|e| anyhow::anyhow!("till at {addr} answered a status this CLI cannot read: {e}"))
}

/// A replica id for humans: terminal ids as `T3`, later incarnations as `T3.<hex>`, master
/// data as `master` (replica ids are terminal << 32 | incarnation; origin 0 is master data).
fn origin(o: u64) -> String {
    match o {
        0 => "master".into(),
        o if o >> 32 == 0 => format!("T{o}"),
        o => format!("T{}.{:08x}", o >> 32, o as u32),
    }
}

/// The status as printed, one line per topic.
fn render(s: &StatusView) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "store {}  terminal {}  now {}",
        s.store_id, s.terminal_id, s.now
    );
    let _ = writeln!(
        out,
        "tillmesh {}  mesh protocol {} to {}",
        s.version, s.protocol.0, s.protocol.1
    );
    let vv: Vec<String> = s
        .version_vector
        .iter()
        .map(|(o, n)| format!("{}:{n}", origin(*o)))
        .collect();
    let _ = writeln!(
        out,
        "events held: {} ({} compacted)  by origin: {}",
        s.events,
        s.events_compacted,
        vv.join(" ")
    );
    let _ = writeln!(
        out,
        "open transactions: {}  sessions: {}  write queue: {}",
        s.drafts_open, s.sessions_active, s.write_queue
    );
    let _ = writeln!(
        out,
        "catalog: {} items, master data v{}",
        s.catalog_items, s.master_version
    );
    match &s.cloud {
        None => {
            let _ = writeln!(out, "cloud: not configured");
        }
        Some(c) => {
            let _ = writeln!(
                out,
                "cloud: {}{}  last reached {}  backlog {} events{}{}",
                if c.credential_refused {
                    "CREDENTIAL REFUSED (replace it: tillmesh hq token --store)"
                } else if c.online {
                    "online"
                } else {
                    "offline"
                },
                if c.uploading {
                    " (this till uploads)"
                } else {
                    ""
                },
                c.last_ok.as_deref().unwrap_or("never"),
                c.backlog,
                c.last_error
                    .as_deref()
                    .map(|e| format!("  last error: {e}"))
                    .unwrap_or_default(),
                if c.sales_refused {
                    "  NEW SALES REFUSED (offline limit; a manager can override)"
                } else {
                    ""
                },
            );
        }
    }
    let _ = match &s.raft {
        Some(r) => writeln!(
            out,
            "raft: leader {}  term {}  voters {}",
            r.leader.map_or("none yet".into(), |l| format!("T{l}")),
            r.term,
            serde_json::to_string(&r.voters).unwrap_or_default()
        ),
        None => writeln!(out, "raft: off (no mesh)"),
    };
    if s.unknown_kind_events > 0 {
        let _ = writeln!(
            out,
            "newer events: {} event(s) of kinds this version does not know are held and relayed; upgrade this till to apply them",
            s.unknown_kind_events
        );
    }
    if s.quarantined > 0 {
        let _ = writeln!(
            out,
            "quarantine: {} event(s) from peers failed validation (GET /api/v1/quarantine lists them)",
            s.quarantined
        );
    }
    for a in &s.duplicate_terminal_at {
        let _ = writeln!(
            out,
            "TERMINAL ID CONFLICT: the till at {a} presents this till's terminal id {}; it is refused (give each till its own id)",
            s.terminal_id
        );
    }
    for p in &s.clock_skew {
        let _ = writeln!(
            out,
            "clock: T{} stamps its events {} s ahead of this till (past the drift limit; check its time)",
            p.terminal,
            p.ahead_ms / 1000
        );
    }
    if let Some(ms) = s.own_clock_ahead_ms {
        let _ = writeln!(
            out,
            "CLOCK AHEAD: this till's clock runs {} s ahead of its peers (past the drift limit; set its time)",
            ms / 1000
        );
    }
    if s.peers.is_empty() {
        let _ = writeln!(out, "mesh: no peers");
    }
    for p in &s.peers {
        let _ = writeln!(
            out,
            "peer T{}  {}  out {}  in {}{}  lag {} events  sent {}  received {}{}",
            p.terminal,
            p.addr,
            serde_json::to_value(p.outbound)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            if p.inbound { "connected" } else { "-" },
            p.protocol
                .map(|v| format!("  protocol {v}"))
                .unwrap_or_default(),
            p.lag_events,
            p.events_sent,
            p.events_received,
            p.last_error
                .as_deref()
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_print_as_terminals_incarnations_and_master_data() {
        assert_eq!(origin(0), "master");
        assert_eq!(origin(3), "T3");
        assert_eq!(origin((3 << 32) | 0xab), "T3.000000ab");
    }
}
