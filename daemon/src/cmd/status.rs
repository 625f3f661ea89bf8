//! `tillmesh status`: asks a running till for its status and prints it for a human.

use std::net::SocketAddr;

/// Prints the status of the till at `addr`.
pub(super) fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = rt.block_on(http_get(addr, "/api/v1/status"))?;
    let s: serde_json::Value = serde_json::from_str(&body)?;
    println!(
        "store {}  terminal {}  now {}",
        s["store_id"].as_str().unwrap_or("?"),
        s["terminal_id"],
        s["now"].as_str().unwrap_or("?")
    );
    // Replica ids are terminal << 32 | incarnation; origin 0 is master data.
    let vv: Vec<String> = s["version_vector"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e[0].as_u64()?, e[1].as_u64()?)))
        .map(|(o, n)| match o {
            0 => format!("master:{n}"),
            o if o >> 32 == 0 => format!("T{o}:{n}"),
            o => format!("T{}.{:08x}:{n}", o >> 32, o as u32),
        })
        .collect();
    println!(
        "events held: {} ({} compacted)  by origin: {}",
        s["events"],
        s["events_compacted"],
        vv.join(" ")
    );
    println!(
        "open transactions: {}  sessions: {}  write queue: {}",
        s["drafts_open"], s["sessions_active"], s["write_queue"]
    );
    println!(
        "catalog: {} items, master data v{}",
        s["catalog_items"], s["master_version"]
    );
    let c = &s["cloud"];
    if c.is_null() {
        println!("cloud: not configured");
    } else {
        println!(
            "cloud: {}{}  last reached {}  backlog {} events{}{}",
            if c["online"] == true {
                "online"
            } else {
                "offline"
            },
            if c["uploading"] == true {
                " (this till uploads)"
            } else {
                ""
            },
            c["last_ok"].as_str().unwrap_or("never"),
            c["backlog"],
            c["last_error"]
                .as_str()
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default(),
            if c["sales_refused"] == true {
                "  NEW SALES REFUSED (offline limit; a manager can override)"
            } else {
                ""
            },
        );
    }
    match s["raft"].as_object() {
        Some(r) => println!(
            "raft: leader {}  term {}  voters {}",
            r["leader"]
                .as_u64()
                .map_or("none yet".into(), |l| format!("T{l}")),
            r["term"],
            r["voters"]
        ),
        None => println!("raft: off (no mesh)"),
    }
    let peers = s["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        println!("mesh: no peers");
    }
    for p in peers {
        println!(
            "peer T{}  {}  out {}  in {}  lag {} events  sent {}  received {}{}",
            p["terminal"],
            p["addr"].as_str().unwrap_or("?"),
            p["outbound"].as_str().unwrap_or("?"),
            if p["inbound"] == true {
                "connected"
            } else {
                "-"
            },
            p["lag_events"],
            p["events_sent"],
            p["events_received"],
            p["last_error"]
                .as_str()
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// A minimal HTTP/1.1 GET over a plain TCP socket (the CLI talks to a till on the LAN).
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| anyhow::anyhow!("till at {addr} did not answer within 5 s"))?
    .map_err(|e| anyhow::anyhow!("cannot reach a till at {addr}: {e}"))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed answer from {addr}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "till at {addr} answered: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_string())
}
