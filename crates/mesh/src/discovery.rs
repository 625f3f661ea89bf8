//! mDNS discovery: each till advertises `_tillmesh._udp.local.` with TXT records for its
//! store, terminal, protocol version and QUIC port, and browses for its store's peers. Every
//! address found is handed to the mesh, which dials it (and retires addresses that turn out
//! to be itself or a peer already served). mDNS does not notice a vanished peer (record TTLs
//! are long); the mesh's QUIC keep-alives do.

use crate::wire::{PROTOCOL_MIN, PROTOCOL_VERSION};
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use std::net::{IpAddr, SocketAddr};
use tracing::{debug, info};

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_tillmesh._udp.local.";

/// Where to run mDNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interfaces {
    /// Every interface (a store LAN).
    All,
    /// IPv4 loopback only (several tills on one machine).
    Loopback,
    /// Named interfaces (`eth0`, ...).
    Named(Vec<String>),
}

/// The DNS-SD service type of a till waiting to join a store (no certificate yet).
pub const JOIN_SERVICE_TYPE: &str = "_tillmesh-join._tcp.local.";

/// Most waiting tills a browser keeps (the newest seen win).
pub const JOINING_MAX: usize = 16;

/// A till waiting to join, as its advertisement says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joining {
    /// The code its screen shows (of its key).
    pub code: String,
    /// Its HTTP address (where it serves its signing request and takes a certificate).
    pub http: SocketAddr,
    /// The store it was configured for, if any.
    pub store: Option<String>,
}

/// An mDNS daemon on `interfaces`, and the addresses to advertise (none: every interface's).
fn daemon_on(interfaces: &Interfaces) -> Result<(ServiceDaemon, Vec<IpAddr>), String> {
    let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
    let host_ip: Vec<IpAddr> = match interfaces {
        Interfaces::All => vec![],
        Interfaces::Loopback => {
            daemon
                .disable_interface(IfKind::All)
                .map_err(|e| e.to_string())?;
            daemon
                .enable_interface(IfKind::LoopbackV4)
                .map_err(|e| e.to_string())?;
            vec![IpAddr::from([127, 0, 0, 1])]
        }
        Interfaces::Named(names) => {
            daemon
                .disable_interface(IfKind::All)
                .map_err(|e| e.to_string())?;
            for n in names {
                daemon
                    .enable_interface(IfKind::Name(n.clone()))
                    .map_err(|e| e.to_string())?;
            }
            vec![]
        }
    };
    Ok((daemon, host_ip))
}

/// Advertises a till waiting to join (`code`, its HTTP `port`, its configured store) until
/// dropped through [`Discovery::stop`].
pub fn advertise_joining(
    code: &str,
    port: u16,
    store: Option<&str>,
    interfaces: &Interfaces,
) -> Result<Discovery, String> {
    let (daemon, host_ip) = daemon_on(interfaces)?;
    let instance = format!("join-{}", code.to_ascii_lowercase());
    let mut props = vec![("code", code.to_string()), ("port", port.to_string())];
    if let Some(s) = store {
        props.push(("store", s.to_string()));
    }
    let fullname = register(
        &daemon,
        JOIN_SERVICE_TYPE,
        &instance,
        &host_ip,
        port,
        &props,
    )?;
    Ok(Discovery { daemon, fullname })
}

/// Registers `instance` of `service` with `props` on `daemon` (addresses: `host_ip`, or
/// every interface's when empty); answers its full name.
fn register(
    daemon: &ServiceDaemon,
    service: &str,
    instance: &str,
    host_ip: &[IpAddr],
    port: u16,
    props: &[(&str, String)],
) -> Result<String, String> {
    let host = format!("{instance}.local.");
    let mut info = ServiceInfo::new(service, instance, &host, host_ip, port, props)
        .map_err(|e| e.to_string())?;
    if host_ip.is_empty() {
        info = info.enable_addr_auto();
    }
    let fullname = info.get_fullname().to_string();
    daemon.register(info).map_err(|e| e.to_string())?;
    Ok(fullname)
}

/// Browses for `wait` for the tills of `store_id` and answers their HTTP addresses (from
/// their `http` record; tills that do not advertise one are left out). Blocking.
pub fn store_http_addresses(
    store_id: &str,
    interfaces: &Interfaces,
    wait: std::time::Duration,
) -> Result<Vec<SocketAddr>, String> {
    let (daemon, _) = daemon_on(interfaces)?;
    let rx = daemon.browse(SERVICE_TYPE).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(ev) = rx.recv_timeout(left) else {
            break;
        };
        let ServiceEvent::ServiceResolved(svc) = ev else {
            continue;
        };
        let txt = |k: &str| svc.get_property_val_str(k).map(str::to_string);
        if txt("store").as_deref() != Some(store_id) {
            continue;
        }
        let Some(port) = txt("http").and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        for ip in svc.get_addresses_v4() {
            let a = SocketAddr::from((ip, port));
            if !out.contains(&a) && out.len() < JOINING_MAX * 4 {
                out.push(a);
            }
        }
    }
    let _ = daemon.shutdown();
    Ok(out)
}

/// A running advertiser + browser.
pub struct Discovery {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("fullname", &self.fullname)
            .finish()
    }
}

impl Discovery {
    /// Advertises this till and calls `found` for every peer address of the same store.
    pub fn start(
        store_id: &str,
        terminal: u64,
        port: u16,
        http_port: Option<u16>,
        interfaces: &Interfaces,
        found: impl Fn(SocketAddr) + Send + 'static,
    ) -> Result<Discovery, String> {
        let (daemon, host_ip) = daemon_on(interfaces)?;
        let instance = format!("{}-t{terminal}", crate::identity::store_label(store_id));
        let mut props = vec![
            ("store", store_id.to_string()),
            ("terminal", terminal.to_string()),
            // The protocol versions spoken; a peer outside them is still dialed, so the
            // Hello exchange can tell both tills which one to upgrade.
            ("proto", PROTOCOL_VERSION.to_string()),
            ("proto_min", PROTOCOL_MIN.to_string()),
            ("port", port.to_string()),
        ];
        // Where the till's HTTP API is (a till waiting to join redeems its token there).
        if let Some(h) = http_port {
            props.push(("http", h.to_string()));
        }
        let fullname = register(&daemon, SERVICE_TYPE, &instance, &host_ip, port, &props)?;
        let rx = daemon.browse(SERVICE_TYPE).map_err(|e| e.to_string())?;
        let store = store_id.to_string();
        std::thread::Builder::new()
            .name("mdns-browse".into())
            .spawn(move || {
                while let Ok(ev) = rx.recv() {
                    let ServiceEvent::ServiceResolved(svc) = ev else {
                        continue;
                    };
                    let txt = |k: &str| svc.get_property_val_str(k).map(str::to_string);
                    if txt("store").as_deref() != Some(store.as_str()) {
                        debug!(name = %svc.fullname, "ignoring another store's till");
                        continue;
                    }
                    let own = txt("terminal").and_then(|t| t.parse::<u64>().ok()) == Some(terminal);
                    for ip in svc.get_addresses_v4() {
                        // This till's own record is skipped, but not another host claiming
                        // this till's terminal id: the mesh dials it and refuses it.
                        if own && is_this_host(std::net::IpAddr::V4(ip)) {
                            continue;
                        }
                        let addr = SocketAddr::from((ip, svc.port));
                        info!(%addr, name = %svc.fullname, "discovered a peer");
                        found(addr);
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Discovery { daemon, fullname })
    }

    /// Also browses for tills waiting to join (of this store, or configured for none) and
    /// calls `found` for each, and `gone` for each code whose advertisement is withdrawn.
    pub fn browse_joining(
        &self,
        store_id: &str,
        found: impl Fn(Joining) + Send + 'static,
        gone: impl Fn(&str) + Send + 'static,
    ) -> Result<(), String> {
        let rx = self
            .daemon
            .browse(JOIN_SERVICE_TYPE)
            .map_err(|e| e.to_string())?;
        let store = store_id.to_string();
        std::thread::Builder::new()
            .name("mdns-joining".into())
            .spawn(move || {
                while let Ok(ev) = rx.recv() {
                    match ev {
                        ServiceEvent::ServiceResolved(svc) => {
                            let txt = |k: &str| svc.get_property_val_str(k).map(str::to_string);
                            let their = txt("store");
                            if their.as_deref().is_some_and(|s| s != store) {
                                continue;
                            }
                            let Some(code) = txt("code").filter(|c| c.len() <= 16) else {
                                continue;
                            };
                            if let Some(ip) = svc.get_addresses_v4().into_iter().next() {
                                let http = SocketAddr::from((ip, svc.port));
                                info!(%http, %code, "a till is waiting to join");
                                found(Joining {
                                    code,
                                    http,
                                    store: their,
                                });
                            }
                        }
                        ServiceEvent::ServiceRemoved(_, fullname) => {
                            if let Some(code) = fullname
                                .strip_prefix("join-")
                                .and_then(|f| f.split('.').next())
                            {
                                gone(&code.to_ascii_uppercase());
                            }
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Says goodbye (so peers drop the record) and stops the daemon.
    pub fn stop(self) {
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}

/// Whether `ip` is one of this host's own addresses (loopback, or an interface's; read
/// afresh, as interfaces come and go). If the interfaces cannot be read, it is taken as
/// this host's: a duplicate missed is better than a till refusing itself.
pub(crate) fn is_this_host(ip: std::net::IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs.iter().any(|i| i.ip() == ip),
        Err(_) => true,
    }
}
