//! The till as a systemd service (`Type=notify`): it says it is ready once it can sell, pings
//! the watchdog while healthy and says it is stopping on SIGTERM, through `NOTIFY_SOCKET` (a
//! datagram socket this test listens on, as systemd does).

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The next message on `sock` (one `KEY=value` line each).
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0_u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
}

#[test]
fn the_till_tells_systemd_it_is_ready_pings_the_watchdog_and_says_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(["terminal", "--config"])
        .arg(repo().join("configs/terminal.example.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready: and by then the till answers.
    assert_eq!(next(&sock), "READY=1");
    let health = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/health")])
        .output()
        .unwrap();
    assert!(health.status.success(), "ready before it answers");
    // Watchdog pings (at half the interval) while healthy.
    for _ in 0..3 {
        assert_eq!(next(&sock), "WATCHDOG=1");
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut last = next(&sock);
    while last == "WATCHDOG=1" {
        last = next(&sock);
    }
    assert_eq!(last, "STOPPING=1");
    assert!(child.wait().unwrap().success(), "a planned stop exits 0");
}
