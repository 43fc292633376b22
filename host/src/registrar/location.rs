//! The location service: AOR -> contacts. Served from memory; every change is
//! committed to the database (group commit: one transaction for all the
//! REGISTERs that arrived meanwhile) before the registrar acknowledges it, so
//! a restart loses no acknowledged binding.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::sip::Peer;
use crate::store::{now_ms, Change, Store};

/// One registered contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The Contact URI as the phone sent it.
    pub contact: String,
    /// Unix ms after which the binding is gone.
    pub expires_at: i64,
    /// Where the REGISTER came from: requests go back over this flow, which
    /// is what lets phones behind NAT receive calls.
    pub source: Peer,
    /// User-Agent of the phone.
    pub user_agent: Option<String>,
    /// `+sip.instance` (RFC 5626).
    pub instance: Option<String>,
    /// Call-ID of the REGISTER that made it.
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// Preference.
    pub q: f32,
    /// The cluster node that holds the flow the phone registered on (set
    /// by [`Location::update`]).
    pub node: Arc<str>,
}

impl Binding {
    /// Where requests for this contact go. Phones behind NAT (a private
    /// Contact address that is not where the REGISTER came from), RFC 5626
    /// outbound contacts (`ob`) and TCP registrations are reached over the
    /// flow they registered on; anything else at its Contact address, which
    /// also allows registering a contact on behalf of another host.
    pub fn destination(&self) -> Peer {
        self.route().0
    }

    /// Whether requests for this contact must go over the flow it
    /// registered on (so only the node holding that flow can send them).
    pub fn needs_flow(&self) -> bool {
        self.route().1
    }

    /// The destination, and whether it is the registering flow.
    fn route(&self) -> (Peer, bool) {
        if self.source.proto.is_stream() {
            return (self.source, true);
        }
        let Ok(uri) = rsip::Uri::try_from(self.contact.as_str()) else {
            return (self.source, true);
        };
        if uri
            .params
            .iter()
            .any(|p| matches!(p, rsip::Param::Other(k, _) if k.value().eq_ignore_ascii_case("ob")))
        {
            return (self.source, true);
        }
        let rsip::Host::IpAddr(ip) = uri.host_with_port.host else {
            return (self.source, true);
        };
        // `::ffff:10.0.0.5` is 10.0.0.5.
        let ip = ip.to_canonical();
        let behind_nat = ip != self.source.addr.ip() && is_private(ip);
        if behind_nat {
            return (self.source, true);
        }
        let proto = uri
            .params
            .iter()
            .find_map(|p| match p {
                rsip::Param::Transport(t) => crate::sip::Proto::parse(&t.to_string()),
                _ => None,
            })
            .unwrap_or(crate::sip::Proto::Udp);
        let port = uri.host_with_port.port.map(|p| *p.value()).unwrap_or(5060);
        let peer = Peer {
            proto,
            addr: std::net::SocketAddr::new(ip, port),
        };
        (peer, false)
    }
}

fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
        }
        std::net::IpAddr::V6(v6) => {
            // Loopback, unspecified, unique local (fc00::/7), link local
            // (fe80::/10).
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Key of an address of record: tenant and user part.
pub type Aor = (i64, String);

enum Op {
    Upsert(Aor, Binding),
    Delete(Aor, String),
}

struct Job {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Why a binding change could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("registration store: {0}")]
pub struct LocationError(String);

/// The location service.
#[derive(Debug)]
pub struct Location {
    map: DashMap<Aor, Vec<Binding>>,
    /// Contact URI -> flow, for in-dialog requests to phones behind NAT.
    flows: DashMap<String, Peer>,
    writer: mpsc::Sender<Job>,
    /// This node (bindings it makes hold its flows).
    node: Arc<str>,
    /// Where the other live nodes of a cluster take requests for the
    /// flows they hold.
    nodes: parking_lot::RwLock<HashMap<Arc<str>, std::net::SocketAddr>>,
    /// Counts local changes; `touched` says when each AOR last changed
    /// here, so a reload that read the database before a local change
    /// committed does not undo it.
    changes: std::sync::atomic::AtomicU64,
    touched: DashMap<Aor, u64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} ops)", self.ops.len())
    }
}

impl Location {
    /// Loads unexpired bindings and starts the writer task.
    pub async fn load(store: Store) -> Result<Arc<Location>, sqlx::Error> {
        let mut map: HashMap<Aor, Vec<Binding>> = HashMap::new();
        // Streamed, not collected: a restart with many contacts must not
        // hold every row twice.
        let mut rows = sqlx::query(
            "SELECT tenant_id, aor, contact_uri, expires_at, source, user_agent, instance_id, \
             call_id, cseq, q, node_id FROM registrations WHERE expires_at > $1",
        )
        .bind(now_ms())
        .fetch(store.pool());
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows).await? {
            let Some(b) = binding_row(&row)? else {
                continue;
            };
            map.entry((row.try_get("tenant_id")?, row.try_get("aor")?))
                .or_default()
                .push(b);
        }
        drop(rows);
        let (tx, rx) = mpsc::channel(4096);
        let location = Arc::new(Location {
            map: DashMap::new(),
            flows: DashMap::new(),
            writer: tx,
            node: store.node_id().into(),
            nodes: parking_lot::RwLock::new(HashMap::new()),
            changes: std::sync::atomic::AtomicU64::new(0),
            touched: DashMap::new(),
        });
        tokio::spawn(writer(store, rx));
        // The same way in as a reload: only this node's flows are kept.
        for (aor, list) in map {
            location.replace(aor, list);
        }
        Ok(location)
    }

    /// Whether this node holds the binding's flow.
    pub fn is_local(&self, b: &Binding) -> bool {
        b.node.is_empty() || b.node == self.node
    }

    /// Where a live node takes requests for the flows it holds.
    pub fn node_address(&self, node: &str) -> Option<std::net::SocketAddr> {
        self.nodes.read().get(node).copied()
    }

    /// Whether `ip` is the address of a live node of the cluster.
    pub fn is_node_ip(&self, ip: std::net::IpAddr) -> bool {
        self.nodes.read().values().any(|a| a.ip() == ip)
    }

    /// Replaces the set of live nodes (from their heartbeats).
    pub fn set_nodes(&self, nodes: HashMap<Arc<str>, std::net::SocketAddr>) {
        *self.nodes.write() = nodes;
    }

    /// Re-reads one AOR's bindings after another node changed them.
    pub async fn reload_aor(
        &self,
        store: &Store,
        tenant_id: i64,
        aor: &str,
    ) -> Result<(), sqlx::Error> {
        self.reload_aors(store, &[(tenant_id, aor.to_owned())])
            .await
    }

    /// Re-reads several AORs' bindings (one query per 200) after another
    /// node changed them.
    pub async fn reload_aors(&self, store: &Store, aors: &[Aor]) -> Result<(), sqlx::Error> {
        for chunk in aors.chunks(200) {
            let read_at = self.changes.load(std::sync::atomic::Ordering::SeqCst);
            let pairs = vec!["(?, ?)"; chunk.len()].join(", ");
            let sql = crate::store::numbered(&format!(
                "SELECT tenant_id, aor, contact_uri, expires_at, source, user_agent, instance_id, \
                 call_id, cseq, q, node_id FROM registrations \
                 WHERE expires_at > ? AND (tenant_id, aor) IN ({pairs})"
            ));
            let mut query = sqlx::query(&sql).bind(now_ms());
            for (t, aor) in chunk {
                query = query.bind(*t).bind(aor);
            }
            let rows = query.fetch_all(store.pool()).await?;
            let mut fresh: HashMap<Aor, Vec<Binding>> =
                chunk.iter().map(|a| (a.clone(), Vec::new())).collect();
            for row in &rows {
                let key: Aor = (row.try_get("tenant_id")?, row.try_get("aor")?);
                if let Some(b) = binding_row(row)? {
                    fresh.entry(key).or_default().push(b);
                }
            }
            for (key, list) in fresh {
                // Changed here since the read: memory is newer.
                if self.touched.get(&key).is_some_and(|t| *t > read_at) {
                    continue;
                }
                self.replace(key, list);
            }
        }
        Ok(())
    }

    fn replace(&self, key: Aor, fresh: Vec<Binding>) {
        let old = if fresh.is_empty() {
            self.map.remove(&key).map(|(_, l)| l).unwrap_or_default()
        } else {
            self.map.insert(key, fresh.clone()).unwrap_or_default()
        };
        for b in &old {
            self.flows.remove(&crate::sip::canonical_uri(&b.contact));
        }
        // Another node's flow is no way to the phone from here.
        for b in fresh.iter().filter(|b| self.is_local(b) || !b.needs_flow()) {
            self.flows
                .insert(crate::sip::canonical_uri(&b.contact), b.destination());
        }
    }

    /// Re-reads every AOR (another node's changes may have been missed).
    pub async fn reload_all(&self, store: &Store) -> Result<(), sqlx::Error> {
        let aors: Vec<(i64, String)> = sqlx::query_as(
            "SELECT DISTINCT tenant_id, aor FROM registrations WHERE expires_at > $1",
        )
        .bind(now_ms())
        .fetch_all(store.pool())
        .await?;
        let live: std::collections::HashSet<Aor> = aors.iter().cloned().collect();
        let gone: Vec<Aor> = self
            .map
            .iter()
            .filter(|e| !live.contains(e.key()))
            .map(|e| e.key().clone())
            .collect();
        let all: Vec<Aor> = gone.into_iter().chain(aors).collect();
        self.reload_aors(store, &all).await
    }

    /// Live bindings of an AOR that this node can send to, best first: a
    /// binding reached over a flow (TCP, TLS, NAT) that another node holds
    /// is left out.
    pub fn lookup_routable(&self, tenant_id: i64, user: &str) -> Vec<Binding> {
        let mut list = self.lookup(tenant_id, user);
        list.retain(|b| !b.needs_flow() || self.is_local(b));
        list
    }

    /// Live bindings of an AOR, best (highest q, newest) first.
    pub fn lookup(&self, tenant_id: i64, user: &str) -> Vec<Binding> {
        let now = now_ms();
        let Some(list) = self.map.get(&(tenant_id, user.to_owned())) else {
            return Vec::new();
        };
        let mut out: Vec<Binding> = list
            .iter()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        out.sort_by(|a, b| b.q.total_cmp(&a.q).then(b.expires_at.cmp(&a.expires_at)));
        out
    }

    /// Whether an AOR has any live binding.
    pub fn is_registered(&self, tenant_id: i64, user: &str) -> bool {
        let now = now_ms();
        self.map
            .get(&(tenant_id, user.to_owned()))
            .is_some_and(|l| l.iter().any(|b| b.expires_at > now))
    }

    /// The flow a contact URI (in [`crate::sip::canonical_uri`] form)
    /// registered over, for routing in-dialog requests to a phone behind NAT.
    pub fn flow_of_contact(&self, contact: &str) -> Option<Peer> {
        self.flows.get(contact).map(|p| *p)
    }

    /// Whether some registered contact is reached over this flow (a TCP
    /// connection must then stay open while it is idle). A scan, made only
    /// when a connection has been idle for the whole idle timeout.
    pub fn has_flow(&self, peer: Peer) -> bool {
        self.flows.iter().any(|e| *e.value() == peer)
    }

    /// Applies a REGISTER's changes: `upserts` replace bindings with the same
    /// contact, `removals` drop contacts, `remove_all` clears the AOR first.
    /// Returns the AOR's bindings afterwards, once the change is committed.
    pub async fn update(
        &self,
        aor: Aor,
        upserts: Vec<Binding>,
        removals: Vec<String>,
        remove_all: bool,
    ) -> Result<Vec<Binding>, LocationError> {
        let mut ops = Vec::new();
        let now = now_ms();
        let seq = self
            .changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.touched.insert(aor.clone(), seq);
        let after = {
            let mut entry = self.map.entry(aor.clone()).or_default();
            let list = entry.value_mut();
            if remove_all {
                for b in list.drain(..) {
                    self.flows.remove(&crate::sip::canonical_uri(&b.contact));
                    ops.push(Op::Delete(aor.clone(), b.contact));
                }
            }
            for c in removals {
                list.retain(|b| b.contact != c);
                self.flows.remove(&crate::sip::canonical_uri(&c));
                ops.push(Op::Delete(aor.clone(), c));
            }
            for mut b in upserts {
                b.node = self.node.clone();
                list.retain(|x| x.contact != b.contact);
                self.flows
                    .insert(crate::sip::canonical_uri(&b.contact), b.source);
                ops.push(Op::Upsert(aor.clone(), b.clone()));
                list.push(b);
            }
            list.retain(|b| b.expires_at > now);
            list.clone()
        };
        if ops.is_empty() {
            return Ok(after);
        }
        let upserted: Vec<Binding> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Upsert(_, b) => Some(b.clone()),
                Op::Delete(..) => None,
            })
            .collect();
        let (done, wait) = oneshot::channel();
        let stored = match self.writer.send(Job { ops, done }).await {
            Ok(()) => wait.await.unwrap_or_else(|_| Err("writer stopped".into())),
            Err(_) => Err("writer stopped".into()),
        };
        if let Err(e) = stored {
            // What was not stored must not route calls: take back the
            // contacts this change added (unless something newer replaced
            // them meanwhile).
            if let Some(mut list) = self.map.get_mut(&aor) {
                list.retain(|b| !upserted.contains(b));
            }
            for b in &upserted {
                self.flows.remove(&crate::sip::canonical_uri(&b.contact));
            }
            return Err(LocationError(e));
        }
        // Again once committed: a reload that read before the commit must
        // not replace what it could not see.
        let seq = self
            .changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.touched.insert(aor, seq);
        Ok(after)
    }

    /// Drops expired bindings from memory; returns the (tenant, AOR) pairs
    /// that have no live contact left.
    pub fn sweep(&self) -> Vec<(i64, String)> {
        let now = now_ms();
        let mut emptied = Vec::new();
        self.map.retain(|key, list| {
            list.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    self.flows.remove(&crate::sip::canonical_uri(&b.contact));
                }
                live
            });
            if list.is_empty() {
                emptied.push(key.clone());
            }
            !list.is_empty()
        });
        emptied
    }

    /// Number of live contacts.
    pub fn contact_count(&self) -> usize {
        self.map.iter().map(|e| e.value().len()).sum()
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let results = match commit(&store, &batch).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "registration commit failed");
                vec![Err(e.to_string()); batch.len()]
            }
        };
        for (job, res) in batch.drain(..).zip(results) {
            let _ = job.done.send(res);
        }
    }
}

/// Commits a batch in one transaction. Optimistically all at once (one
/// statement per binding); if a statement fails, again with each job under
/// its own savepoint: a job whose rows fail is rolled back alone and told
/// so, and the others still commit.
async fn commit(store: &Store, batch: &[Job]) -> Result<Vec<Result<(), String>>, sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    let mut all_applied = true;
    for job in batch {
        if apply(&mut tx, &job.ops).await.is_err() {
            all_applied = false;
            break;
        }
    }
    if all_applied {
        announce(store, &mut tx, batch.iter()).await?;
        tx.commit().await?;
        return Ok(vec![Ok(()); batch.len()]);
    }
    tx.rollback().await?;
    let mut tx = store.pool().begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut stored = Vec::new();
    for job in batch {
        let mut sp = sqlx::Connection::begin(&mut *tx).await?;
        match apply(&mut sp, &job.ops).await {
            Ok(()) => {
                sp.commit().await?;
                results.push(Ok(()));
                stored.push(job);
            }
            Err(e) => {
                tracing::warn!(error = %e, "one registration refused by the store");
                sp.rollback().await?;
                results.push(Err(e.to_string()));
            }
        }
    }
    announce(store, &mut tx, stored.into_iter()).await?;
    tx.commit().await?;
    Ok(results)
}

/// Tells other nodes which AORs the transaction changes, in as few
/// announcements as fit PostgreSQL's 8000-byte payload.
async fn announce<'a>(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    jobs: impl Iterator<Item = &'a Job>,
) -> Result<(), sqlx::Error> {
    if store.backend() != crate::store::Backend::Postgres {
        return Ok(());
    }
    let mut aors: Vec<Aor> = jobs
        .flat_map(|j| j.ops.iter())
        .map(|op| match op {
            Op::Upsert(aor, _) | Op::Delete(aor, _) => aor.clone(),
        })
        .collect();
    aors.sort();
    aors.dedup();
    let mut chunk: Vec<Aor> = Vec::new();
    let mut size = 0;
    for aor in aors {
        size += aor.1.len() + 24;
        chunk.push(aor);
        if size > 6000 {
            store
                .notify_in(conn, &Change::Locations(std::mem::take(&mut chunk)))
                .await?;
            size = 0;
        }
    }
    if !chunk.is_empty() {
        store.notify_in(conn, &Change::Locations(chunk)).await?;
    }
    Ok(())
}

async fn apply(conn: &mut sqlx::AnyConnection, ops: &[Op]) -> Result<(), sqlx::Error> {
    for op in ops {
        match op {
            Op::Upsert((tenant, aor), b) => {
                sqlx::query(
                    "INSERT INTO registrations (tenant_id, aor, contact_uri, expires_at, source, \
                     transport, user_agent, instance_id, call_id, cseq, q, node_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (tenant_id, aor, contact_uri) DO UPDATE SET \
                     expires_at = excluded.expires_at, source = excluded.source, \
                     transport = excluded.transport, user_agent = excluded.user_agent, \
                     instance_id = excluded.instance_id, call_id = excluded.call_id, \
                     cseq = excluded.cseq, q = excluded.q, node_id = excluded.node_id",
                )
                .bind(tenant)
                .bind(aor)
                .bind(&b.contact)
                .bind(b.expires_at)
                .bind(b.source.to_string())
                .bind(b.source.proto.as_str())
                .bind(&b.user_agent)
                .bind(&b.instance)
                .bind(&b.call_id)
                .bind(i64::from(b.cseq))
                .bind(f64::from(b.q))
                .bind(&*b.node)
                .execute(&mut *conn)
                .await?;
            }
            Op::Delete((tenant, aor), contact) => {
                sqlx::query(
                    "DELETE FROM registrations WHERE tenant_id = $1 AND aor = $2 AND contact_uri = $3",
                )
                .bind(tenant)
                .bind(aor)
                .bind(contact)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// A stored binding; `None` if its source no longer parses.
fn binding_row(row: &sqlx::any::AnyRow) -> Result<Option<Binding>, sqlx::Error> {
    let Some(source) = Peer::parse(&row.try_get::<String, _>("source")?) else {
        return Ok(None);
    };
    Ok(Some(Binding {
        contact: row.try_get("contact_uri")?,
        expires_at: row.try_get("expires_at")?,
        source,
        user_agent: row.try_get("user_agent")?,
        instance: row.try_get("instance_id")?,
        call_id: row.try_get("call_id")?,
        cseq: row.try_get::<i64, _>("cseq")? as u32,
        q: row.try_get::<f64, _>("q")? as f32,
        node: row.try_get::<String, _>("node_id")?.into(),
    }))
}

/// Deletes expired rows from the database.
pub async fn purge_expired(store: &Store) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM registrations WHERE expires_at <= $1")
        .bind(now_ms())
        .execute(store.pool())
        .await?;
    Ok(r.rows_affected())
}
