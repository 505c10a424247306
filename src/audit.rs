//! The audit trail: who did what to what, from where, when, and how it ended. Written by the
//! console's gate and the API's dispatcher for every change, and by logins; read on the Audit
//! log page; kept for the audit retention (90 days by default) by the sweeper.

use crate::clock::Millis;
use crate::state::AppState;
use crate::store::{AuditEntry, DynStore, Via};

/// Who acts, through which door, from which address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A user name, or the SecretId of an API call.
    pub name: String,
    pub via: Via,
    pub source: String,
}

impl Actor {
    pub fn console(name: &str, source: &str) -> Actor {
        Actor {
            name: name.to_string(),
            via: Via::Console,
            source: source.to_string(),
        }
    }

    pub fn api(secret_id: &str, source: &str) -> Actor {
        Actor {
            name: secret_id.to_string(),
            via: Via::Api,
            source: source.to_string(),
        }
    }
}

/// Longest text kept per field: a target or an outcome quoting user input stays bounded.
const FIELD_MAX_CHARS: usize = 300;

fn bounded(text: &str) -> String {
    match text.char_indices().nth(FIELD_MAX_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Appends an entry. A failed write is logged, with the entry, and does not undo what was
/// done: the change happened, and the log line keeps the record.
pub async fn record(state: &AppState, actor: &Actor, action: &str, target: &str, outcome: &str) {
    append(
        &state.store,
        AuditEntry {
            id: 0,
            at: state.clock.now_millis(),
            actor: bounded(&actor.name),
            via: actor.via,
            source: bounded(&actor.source),
            action: action.to_string(),
            target: bounded(target),
            outcome: bounded(outcome),
        },
    )
    .await;
}

/// An entry by the server itself (the first admin, keys from its configuration).
pub async fn record_system(
    store: &DynStore,
    at: Millis,
    action: &str,
    target: &str,
    outcome: &str,
) {
    append(
        store,
        AuditEntry {
            id: 0,
            at,
            actor: "scf-console".into(),
            via: Via::System,
            source: "-".into(),
            action: action.to_string(),
            target: bounded(target),
            outcome: bounded(outcome),
        },
    )
    .await;
}

async fn append(store: &DynStore, entry: AuditEntry) {
    if let Err(e) = store.append_audit(&entry).await {
        tracing::error!(
            error = %e,
            actor = %entry.actor,
            action = %entry.action,
            target = %entry.target,
            outcome = %entry.outcome,
            "the audit log could not be written; the entry is only in this log"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let cut = super::bounded(&long);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
        assert_eq!(super::bounded("short"), "short");
    }
}
