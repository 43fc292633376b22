//! Call history: one record per call with its legs. Records are written by a
//! background task in batched transactions so the SIP path never waits on
//! the database.

use serde::Serialize;
use tokio::sync::mpsc;

use crate::store::Store;

/// Why a call did not connect (or that it did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Someone answered.
    Answered,
    /// It rang until the ring time ran out.
    NoAnswer,
    /// The callee was busy (486/600, or already on a call).
    Busy,
    /// Nothing could be reached (no registration, no response, transport error).
    Unreachable,
    /// The caller hung up before an answer.
    Cancelled,
    /// Refused (403/404/603, a plugin's reject, ...).
    Rejected,
}

impl Outcome {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Unreachable => "unreachable",
            Outcome::Cancelled => "cancelled",
            Outcome::Rejected => "rejected",
        }
    }
}

/// One attempt to reach one contact.
#[derive(Debug, Clone, Serialize)]
pub struct Leg {
    /// Extension or URI that was targeted.
    pub target: String,
    /// Contact that was rung.
    pub contact: String,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub ended_at: Option<i64>,
    /// Final status of the branch.
    pub status_code: Option<u16>,
    /// How the branch ended.
    pub outcome: Outcome,
}

/// A call as history shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// Our id.
    pub id: String,
    /// Tenant.
    pub tenant_id: i64,
    /// SIP Call-ID.
    pub sip_call_id: String,
    /// Caller (extension or number).
    pub caller: String,
    /// Dialed (extension or number).
    pub callee: String,
    /// internal / inbound / outbound.
    pub direction: &'static str,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub answered_at: Option<i64>,
    /// Unix ms.
    pub ended_at: Option<i64>,
    /// Contact or extension that answered.
    pub answered_by: Option<String>,
    /// Outcome.
    pub outcome: Outcome,
    /// Final status sent to the caller.
    pub status_code: Option<u16>,
    /// Free-form annotations ("diverted: busy", ...), `;`-separated.
    pub annotations: String,
    /// Branches.
    pub legs: Vec<Leg>,
}

impl CallRecord {
    /// Adds history notes ("delegated", "diverted: busy").
    pub fn annotate(&mut self, notes: &[String]) {
        for n in notes {
            if !self.annotations.is_empty() {
                self.annotations.push_str("; ");
            }
            self.annotations.push_str(n);
        }
    }
}

enum Write {
    Insert(Box<CallRecord>),
    Ended { id: String, at: i64 },
}

/// Handle to the history writer.
#[derive(Debug, Clone)]
pub struct History {
    tx: mpsc::UnboundedSender<Write>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Write")
    }
}

impl History {
    /// Starts the writer.
    pub fn start(store: Store) -> History {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, rx));
        History { tx }
    }

    /// Stores a call (at its answer or its failure).
    pub fn record(&self, rec: CallRecord) {
        let _ = self.tx.send(Write::Insert(Box::new(rec)));
    }

    /// Marks an answered call as ended.
    pub fn ended(&self, id: &str, at: i64) {
        let _ = self.tx.send(Write::Ended {
            id: id.to_owned(),
            at,
        });
    }
}

async fn writer(store: Store, mut rx: mpsc::UnboundedReceiver<Write>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        if let Err(e) = commit(&store, &batch).await {
            tracing::error!(error = %e, n = batch.len(), "call history not written");
        }
        batch.clear();
    }
}

async fn commit(store: &Store, batch: &[Write]) -> Result<(), sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    for w in batch {
        match w {
            Write::Insert(r) => {
                sqlx::query(
                    "INSERT INTO calls (id, tenant_id, sip_call_id, caller, callee, direction, \
                     started_at, answered_at, ended_at, answered_by, outcome, status_code, annotations) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&r.id)
                .bind(r.tenant_id)
                .bind(&r.sip_call_id)
                .bind(&r.caller)
                .bind(&r.callee)
                .bind(r.direction)
                .bind(r.started_at)
                .bind(r.answered_at)
                .bind(r.ended_at)
                .bind(&r.answered_by)
                .bind(r.outcome.as_str())
                .bind(r.status_code.map(i64::from))
                .bind(&r.annotations)
                .execute(&mut *tx)
                .await?;
                for (i, leg) in r.legs.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO call_legs (call_id, idx, target, contact, started_at, ended_at, \
                         status_code, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&r.id)
                    .bind(i as i64)
                    .bind(&leg.target)
                    .bind(&leg.contact)
                    .bind(leg.started_at)
                    .bind(leg.ended_at)
                    .bind(leg.status_code.map(i64::from))
                    .bind(leg.outcome.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Write::Ended { id, at } => {
                sqlx::query("UPDATE calls SET ended_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await
}
