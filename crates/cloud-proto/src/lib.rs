//! The contract between a store's leader and the cloud sync endpoint, shared by both sides:
//! upload batches and their acknowledgements, master-data changes, and the compact binary
//! encoding of a batch (bincode 2 with explicit limits; JSON is the interoperable form).

pub mod openapi;
pub mod records;
pub mod tills;

pub use records::{Category, HqCustomer};
pub use tills::{TillLink, TillState, TillsAnswer, TillsReport};

use serde::{Deserialize, Serialize};
use tillmesh_pos::cashier::Account;
use tillmesh_pos::catalog::Item;
use tillmesh_pos::event::Event;
use tillmesh_pos::pricing::ScheduledPrice;
use tillmesh_pos::promotion::Promotion;
use tillmesh_pos::trace::TraceContext;
use utoipa::ToSchema;

/// Most events in one upload batch.
pub const BATCH_EVENTS_MAX: usize = 5_000;
/// Largest upload body, in either encoding.
pub const BATCH_BYTES_MAX: usize = 8 << 20;
/// Most master-data changes in one answer; the client asks again while `more` is set.
pub const MASTER_CHANGES_MAX: usize = 2_000;
/// Content type of the compact binary encoding of a [`Batch`].
pub const BINARY_CONTENT_TYPE: &str = "application/x-tillmesh-batch";
/// The newest binary batch format this version writes: the first four bytes of a binary
/// batch are `TB` and the format (big-endian u16). Format 2 (0.2.0) has the layout of 1 and
/// may also carry events the store quarantined (they failed a till's validator): the cloud
/// keeps them as quarantined, counted as held (so the origin's contiguous watermark passes
/// them) and never projected, instead of refusing the batch. The uplink writes 2 only to a
/// cloud that names it ([`MasterChanges::batch_versions`]); otherwise 1, without them.
///
/// Format 3 (0.2.0, seals) carries each event's seal beside it and the store's key records
/// ([`Batch::keys`]); the cloud checks seals against the store CA it pinned
/// (ARCHITECTURE.md "Authenticity"). JSON batches carry no seals (format 1's rules).
///
/// Format 4 (0.2.0 too) carries each event's trace context too (`Event::trace`), so that the
/// cloud's ingest continues the trace of the request that made it.
pub const BATCH_VERSION: u16 = 4;
/// The first batch format that carries trace contexts.
pub const BATCH_VERSION_TRACES: u16 = 4;
/// The first batch format that carries seals and key records.
pub const BATCH_VERSION_SEALS: u16 = 3;
/// Most key records in one batch.
pub const BATCH_KEYS_MAX: usize = 1_024;
/// The first batch format that may carry quarantined events.
pub const BATCH_VERSION_QUARANTINE: u16 = 2;
/// The kind under which the cloud keeps an event a store quarantined.
pub const QUARANTINED_KIND: &str = "Quarantined";
/// The oldest binary batch format this version reads. The cloud reads at least the two
/// newest store versions' formats (see ARCHITECTURE.md "Compatibility").
pub const BATCH_VERSION_MIN: u16 = 1;
/// Response header in which the cloud names the batch formats it reads (`1-2`).
pub const BATCH_VERSIONS_HEADER: &str = "tillmesh-batch-versions";
const BATCH_MAGIC: [u8; 2] = *b"TB";

/// One event of a store, as uploaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreEvent {
    /// The store the event belongs to; must be the store of the uploader's credential.
    pub store: String,
    /// The event as the tills recorded it.
    pub event: Event,
}

/// An upload from a store's Raft leader. An empty batch is a heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Raft term of the uploader; the cloud refuses a term lower than the highest it has seen
    /// for the store (fencing of a deposed leader).
    pub term: u64,
    /// Terminal id of the leader that uploads.
    pub leader: u64,
    /// Master-data version the store has applied.
    #[serde(default)]
    pub master_version: u64,
    /// Events the leader still holds that are not in this batch (shown in fleet status).
    #[serde(default)]
    pub backlog: u64,
    /// Terminals the leader currently sees in the store, itself included.
    #[serde(default)]
    pub tills: Vec<u64>,
    /// The events, in any order; duplicates of earlier uploads are recognised. Their seals
    /// (`Event::sig`) travel in binary format 3 only.
    pub events: Vec<StoreEvent>,
    /// What makes the batch checkable (binary format 3 only; JSON batches carry none).
    #[serde(skip)]
    pub sealing: Sealing,
}

/// The authenticity part of a batch (format 3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealing {
    /// Key records of the store's tills: the cloud checks seals with them, and keeps them.
    pub keys: Vec<tillmesh_pos::seal::KeyRecord>,
    /// The store's newest revocation list (signed by the store CA), which the cloud keeps.
    pub revocations: Option<tillmesh_pos::revocation::SignedRevocations>,
    /// The uploading leader's signature of [`batch_message`] with its certificate key: the
    /// cloud takes a format 3 batch only from an enrolled, unrevoked till of the store.
    pub seal: Option<Vec<u8>>,
}

/// What the uploading leader signs: the store, the batch's term, leader and counts, and
/// each event's id with its seal (or its body's digest when it has none).
pub fn batch_message(store: &str, b: &Batch) -> Vec<u8> {
    let mut m = b"tillmesh batch seal v1\0".to_vec();
    m.extend_from_slice(store.as_bytes());
    m.push(0);
    for n in [b.term, b.leader, b.master_version, b.backlog] {
        m.extend_from_slice(&n.to_be_bytes());
    }
    m.extend_from_slice(&(b.tills.len() as u64).to_be_bytes());
    for t in &b.tills {
        m.extend_from_slice(&t.to_be_bytes());
    }
    m.extend_from_slice(&(b.events.len() as u64).to_be_bytes());
    for se in &b.events {
        m.extend_from_slice(se.store.as_bytes());
        m.push(0);
        tillmesh_pos::seal::batch_entry(&se.event, &mut m);
    }
    m
}

/// Formats 3 and 4's layout, as written (borrowing the batch): each event with its seal
/// (3), or with its seal and trace context (4).
#[derive(Serialize)]
struct SealedOut<'a, E> {
    term: u64,
    leader: u64,
    master_version: u64,
    backlog: u64,
    tills: &'a [u64],
    events: Vec<E>,
    sealing: &'a Sealing,
}

/// Formats 3 and 4's layout, as read.
#[derive(Deserialize)]
struct SealedIn<E> {
    term: u64,
    leader: u64,
    master_version: u64,
    backlog: u64,
    tills: Vec<u64>,
    events: Vec<E>,
    sealing: Sealing,
}

/// An event of a format 3 batch: with its seal.
type SealedEvent = (StoreEvent, Option<Vec<u8>>);

/// An event of a format 4 batch: with its seal and its trace context.
type TracedIn = (StoreEvent, Option<Vec<u8>>, Option<TraceContext>);

/// The highest sequence numbers the cloud holds for one origin (a till incarnation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Watermark {
    /// Origin replica id (terminal << 32 | incarnation).
    pub origin: u64,
    /// Every event of this origin up to and including this seq is stored.
    pub contiguous: u64,
    /// Highest seq stored (above `contiguous` when there are gaps).
    pub max_seq: u64,
}

/// The answer to an accepted batch: everything in it is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IngestAck {
    /// Events stored by this batch.
    pub accepted: u64,
    /// Events of this batch the cloud already had (not stored again).
    pub duplicate: u64,
    /// The store's per-origin watermarks after this batch.
    pub watermarks: Vec<Watermark>,
    /// Highest term the cloud has seen for the store (the batch's).
    pub term: u64,
    /// The cloud's current master-data version.
    pub master_version: u64,
    /// True when the cloud has master data newer than the batch's `master_version`.
    pub master_stale: bool,
}

/// What a master-data record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MasterKind {
    /// A catalog item (with its barcodes and base price), keyed by SKU.
    Item,
    /// A scheduled price (chain-wide, or for one store), keyed by `<sku>@<effective_from_ms>`.
    Price,
    /// A promotion, keyed by its id.
    Promotion,
    /// A cashier account (PIN hash only), keyed by employee id.
    Cashier,
    /// A product category, keyed by its id (second stream, see [`records`]).
    Category,
    /// A loyalty customer, keyed by customer id (second stream).
    Customer,
}

impl MasterKind {
    /// Name used in URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MasterKind::Item => "item",
            MasterKind::Price => "price",
            MasterKind::Promotion => "promotion",
            MasterKind::Cashier => "cashier",
            MasterKind::Category => "category",
            MasterKind::Customer => "customer",
        }
    }
    /// Whether records of this kind travel in the second stream ([`records`]), which a
    /// 0.1.0 till cannot read.
    pub fn is_ext(self) -> bool {
        matches!(self, MasterKind::Category | MasterKind::Customer)
    }
    /// Parses [`MasterKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "item" => MasterKind::Item,
            "price" => MasterKind::Price,
            "promotion" => MasterKind::Promotion,
            "cashier" => MasterKind::Cashier,
            "category" => MasterKind::Category,
            "customer" => MasterKind::Customer,
            _ => return None,
        })
    }
}

/// A master-data record's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MasterBody {
    /// Catalog item.
    Item(Item),
    /// Scheduled price.
    Price(ScheduledPrice),
    /// Promotion.
    Promotion(Promotion),
    /// Cashier account.
    Cashier(Account),
    /// Product category.
    Category(Category),
    /// Loyalty customer.
    Customer(HqCustomer),
}

impl MasterBody {
    /// The kind of record.
    pub fn kind(&self) -> MasterKind {
        match self {
            MasterBody::Item(_) => MasterKind::Item,
            MasterBody::Price(_) => MasterKind::Price,
            MasterBody::Promotion(_) => MasterKind::Promotion,
            MasterBody::Cashier(_) => MasterKind::Cashier,
            MasterBody::Category(_) => MasterKind::Category,
            MasterBody::Customer(_) => MasterKind::Customer,
        }
    }
    /// The record's key within its kind.
    pub fn key(&self) -> String {
        match self {
            MasterBody::Item(i) => i.sku.clone(),
            MasterBody::Price(p) => format!("{}@{}", p.sku, p.effective_from_ms),
            MasterBody::Promotion(p) => p.id.clone(),
            MasterBody::Cashier(a) => a.employee_id.clone(),
            MasterBody::Category(c) => c.id.clone(),
            MasterBody::Customer(c) => c.customer.id.clone(),
        }
    }
}

/// One change of master data: a record created or updated (`body` set) or deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MasterChange {
    /// Kind of record.
    pub kind: MasterKind,
    /// Key within the kind.
    pub key: String,
    /// The one store it applies to, or none for every store.
    pub store: Option<String>,
    /// Version at which this change was made.
    pub version: u64,
    /// The record; `None` when it was deleted.
    pub body: Option<MasterBody>,
}

/// Master-data changes since a version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MasterChanges {
    /// The binary batch formats this cloud reads (oldest, newest); absent from a 0.1.0
    /// cloud, which reads format 1 only.
    #[serde(default)]
    pub batch_versions: Option<(u16, u16)>,
    /// Ask again from this version (the highest version this answer covers).
    pub version: u64,
    /// More changes wait beyond `version`.
    pub more: bool,
    /// Changes in version order; a record changed several times appears once, as it is now.
    pub changes: Vec<MasterChange>,
    /// The stream this page is of: absent for the first (items, prices, promotions,
    /// cashiers), [`records::EXT_STREAM`] for the second (categories, customers). A cloud
    /// that does not name the stream asked for does not serve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// HQ's signature of this page for the asking store, when the cloud signs master data
    /// (absent from a 0.1.0 cloud, and from one without a master-data key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<MasterSignature>,
}

/// HQ's Ed25519 signature of one master-data page for one store: tills holding HQ's public
/// key apply a page only with it, whoever proposes it in the store's Raft group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MasterSignature {
    /// The store the page is for.
    pub store: String,
    /// The version the page starts after (it holds every change in `(since, version]`).
    pub since: u64,
    /// The version the page brings the store to.
    pub version: u64,
    /// Which of HQ's keys signed (hex of its public key's first 8 bytes).
    pub key_id: String,
    /// The signature of [`master_message`], hex.
    pub sig: String,
}

/// The key of a master-data record in a store's Raft state and in its tills' rows:
/// `kind:key`.
pub fn record_key(kind: MasterKind, key: &str) -> String {
    format!("{}:{key}", kind.as_str())
}

/// A page's changes as a till's Raft log carries them: `("<kind>:<key>", the record as JSON
/// or None when deleted)`, in the page's order.
pub fn master_pairs(changes: &[MasterChange]) -> Result<Vec<(String, Option<String>)>, String> {
    changes
        .iter()
        .map(|c| {
            let json = match &c.body {
                Some(b) => Some(serde_json::to_string(b).map_err(|e| e.to_string())?),
                None => None,
            };
            Ok((record_key(c.kind, &c.key), json))
        })
        .collect()
}

/// The bytes HQ signs for a master-data page: a domain tag, the store, the version range and
/// every change, each length-prefixed so that no two pages share an encoding.
pub fn master_message(
    store: &str,
    since: u64,
    version: u64,
    changes: &[(String, Option<String>)],
) -> Vec<u8> {
    let mut out = b"tillmesh master-data page v1\0".to_vec();
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    field(store.as_bytes());
    field(&since.to_be_bytes());
    field(&version.to_be_bytes());
    field(&(changes.len() as u64).to_be_bytes());
    for (key, json) in changes {
        field(key.as_bytes());
        match json {
            Some(j) => {
                field(b"+");
                field(j.as_bytes());
            }
            None => field(b"-"),
        }
    }
    out
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BATCH_BYTES_MAX>()
}

/// Why a batch could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Over [`BATCH_BYTES_MAX`].
    #[error("the batch is {0} bytes; at most {BATCH_BYTES_MAX} are accepted")]
    TooLarge(usize),
    /// Not encodable within the limits.
    #[error("cannot encode the batch: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// Malformed.
    #[error("malformed batch: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// Bytes after the batch.
    #[error("{0} trailing bytes after the batch")]
    Trailing(usize),
    /// Too many key records.
    #[error("the batch carries {0} key records; at most {BATCH_KEYS_MAX}")]
    TooManyKeys(usize),
    /// A batch format this version does not read.
    #[error(
        "batch format {found}; this version reads formats {BATCH_VERSION_MIN} to {BATCH_VERSION}{}",
        if *found > BATCH_VERSION { ": upgrade the cloud" } else { ": upgrade the store" }
    )]
    Version {
        /// The format the batch says it is.
        found: u16,
    },
    /// Not a binary batch at all (no `TB` header).
    #[error("not a binary batch (it does not start with the TB header)")]
    NoHeader,
}

/// Encodes a batch in the compact binary form: the `TB` header with [`BATCH_VERSION`], then
/// bincode.
pub fn encode_batch(batch: &Batch) -> Result<Vec<u8>, BatchError> {
    encode_batch_as(batch, BATCH_VERSION)
}

/// [`encode_batch`] in format `version` (one the receiving cloud reads).
pub fn encode_batch_as(batch: &Batch, version: u16) -> Result<Vec<u8>, BatchError> {
    if !(BATCH_VERSION_MIN..=BATCH_VERSION).contains(&version) {
        return Err(BatchError::Version { found: version });
    }
    let mut out = BATCH_MAGIC.to_vec();
    out.extend_from_slice(&version.to_be_bytes());
    if version >= BATCH_VERSION_TRACES {
        let traced = SealedOut {
            term: batch.term,
            leader: batch.leader,
            master_version: batch.master_version,
            backlog: batch.backlog,
            tills: &batch.tills,
            events: batch
                .events
                .iter()
                .map(|e| (e, e.event.sig.as_ref(), e.event.trace.as_ref()))
                .collect(),
            sealing: &batch.sealing,
        };
        bincode::serde::encode_into_std_write(&traced, &mut out, config())?;
    } else if version >= BATCH_VERSION_SEALS {
        let sealed = SealedOut {
            term: batch.term,
            leader: batch.leader,
            master_version: batch.master_version,
            backlog: batch.backlog,
            tills: &batch.tills,
            events: batch
                .events
                .iter()
                .map(|e| (e, e.event.sig.as_ref()))
                .collect(),
            sealing: &batch.sealing,
        };
        bincode::serde::encode_into_std_write(&sealed, &mut out, config())?;
    } else {
        bincode::serde::encode_into_std_write(batch, &mut out, config())?;
    }
    Ok(out)
}

/// Decodes the compact binary form, refusing a format outside the ones this version reads,
/// trailing bytes and anything past the limits.
pub fn decode_batch(bytes: &[u8]) -> Result<Batch, BatchError> {
    decode_batch_versioned(bytes).map(|(b, _)| b)
}

/// [`decode_batch`], answering the batch's format too.
pub fn decode_batch_versioned(bytes: &[u8]) -> Result<(Batch, u16), BatchError> {
    if bytes.len() > BATCH_BYTES_MAX {
        return Err(BatchError::TooLarge(bytes.len()));
    }
    let Some(([m0, m1, v0, v1], bytes)) = bytes.split_first_chunk::<4>() else {
        return Err(BatchError::NoHeader);
    };
    if [*m0, *m1] != BATCH_MAGIC {
        return Err(BatchError::NoHeader);
    }
    let found = u16::from_be_bytes([*v0, *v1]);
    if !(BATCH_VERSION_MIN..=BATCH_VERSION).contains(&found) {
        return Err(BatchError::Version { found });
    }
    let (batch, used) = if found >= BATCH_VERSION_TRACES {
        let (b, used): (SealedIn<TracedIn>, usize) =
            bincode::serde::decode_from_slice(bytes, config())?;
        if b.sealing.keys.len() > BATCH_KEYS_MAX {
            return Err(BatchError::TooManyKeys(b.sealing.keys.len()));
        }
        let batch = Batch {
            term: b.term,
            leader: b.leader,
            master_version: b.master_version,
            backlog: b.backlog,
            tills: b.tills,
            events: b
                .events
                .into_iter()
                .map(|(mut e, sig, trace)| {
                    e.event.sig = sig;
                    // A context whose ids are zero is no context: dropped, not refused.
                    e.event.trace = trace.filter(TraceContext::is_valid);
                    e
                })
                .collect(),
            sealing: b.sealing,
        };
        (batch, used)
    } else if found >= BATCH_VERSION_SEALS {
        let (b, used): (SealedIn<SealedEvent>, usize) =
            bincode::serde::decode_from_slice(bytes, config())?;
        if b.sealing.keys.len() > BATCH_KEYS_MAX {
            return Err(BatchError::TooManyKeys(b.sealing.keys.len()));
        }
        let batch = Batch {
            term: b.term,
            leader: b.leader,
            master_version: b.master_version,
            backlog: b.backlog,
            tills: b.tills,
            events: b
                .events
                .into_iter()
                .map(|(mut e, sig)| {
                    e.event.sig = sig;
                    e
                })
                .collect(),
            sealing: b.sealing,
        };
        (batch, used)
    } else {
        bincode::serde::decode_from_slice::<Batch, _>(bytes, config())?
    };
    if used != bytes.len() {
        return Err(BatchError::Trailing(bytes.len() - used));
    }
    Ok((batch, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tillmesh_crdt::ReplicaId;
    use tillmesh_pos::state::Replica;

    fn batch() -> Batch {
        let mut r = Replica::new(ReplicaId::for_terminal(3, 1));
        let e = r.adjust(
            "SKU1",
            5,
            tillmesh_pos::inventory::Reason::Receiving,
            None,
            None,
            "E1",
            1_000,
        );
        Batch {
            term: 2,
            leader: 3,
            master_version: 1,
            backlog: 0,
            tills: vec![3],
            events: vec![StoreEvent {
                store: "S001".into(),
                event: e,
            }],
            sealing: Default::default(),
        }
    }

    #[test]
    fn both_encodings_round_trip() {
        let b = batch();
        assert_eq!(decode_batch(&encode_batch(&b).unwrap()).unwrap(), b);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Batch>(&json).unwrap(), b);
    }

    #[test]
    fn format_4_carries_trace_contexts_and_older_formats_leave_them_out() {
        use tillmesh_pos::trace::TraceContext;
        let mut b = batch();
        let cx = TraceContext::new([9; 16], [3; 8], 1).unwrap();
        b.events[0].event.trace = Some(cx);
        let (back, v) = decode_batch_versioned(&encode_batch(&b).unwrap()).unwrap();
        assert_eq!((back.events[0].event.trace, v), (Some(cx), 4));
        let (back, v) = decode_batch_versioned(&encode_batch_as(&b, 3).unwrap()).unwrap();
        assert_eq!((back.events[0].event.trace, v), (None, 3));
        // A context with a zero id is no context: the batch is taken, without it.
        b.events[0].event.trace = Some(TraceContext {
            trace_id: [0; 16],
            span_id: [3; 8],
            flags: 1,
        });
        let back = decode_batch(&encode_batch(&b).unwrap()).unwrap();
        assert_eq!(back.events[0].event.trace, None);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode_batch(&batch()).unwrap();
        bytes.push(0);
        assert!(
            decode_batch(&bytes)
                .unwrap_err()
                .to_string()
                .contains("trailing")
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_batch(&bytes);
        }

        #[test]
        fn truncation_is_an_error(cut in 0usize..200) {
            let bytes = encode_batch(&batch()).unwrap();
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(decode_batch(&bytes[..cut]).is_err());
        }
    }
}

/// What HQ answers a store that asked it to enrol a till a manager approved
/// (`POST /api/v1/sync/enrolments`): the terminal id it issued, the till's certificate on
/// the till's own key, the store CA, and, when HQ signs master data, its signature of
/// [`enrolment_message`], which a waiting till configured with HQ's key checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrolmentGrant {
    /// The store.
    pub store_id: String,
    /// The terminal id issued (never issued to another key).
    pub terminal: u64,
    /// The till's certificate (PEM).
    pub cert: String,
    /// The store CA's certificate (PEM).
    pub ca: String,
    /// Which of HQ's keys signed (hex of its public key's first 8 bytes).
    #[serde(default)]
    pub key_id: Option<String>,
    /// HQ's Ed25519 signature of [`enrolment_message`], hex.
    #[serde(default)]
    pub sig: Option<String>,
}

/// The bytes HQ signs for an enrolment grant.
pub fn enrolment_message(store: &str, terminal: u64, cert: &str, ca: &str) -> Vec<u8> {
    let mut out = b"tillmesh enrolment grant v1\0".to_vec();
    for b in [
        store.as_bytes(),
        &terminal.to_be_bytes(),
        cert.as_bytes(),
        ca.as_bytes(),
    ] {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}
