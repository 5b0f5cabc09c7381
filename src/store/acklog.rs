//! Acknowledgements, appended as a log and folded into the targets' groups
//! later: confirming a batch of 10,000 records is one sled write, not
//! 10,000 read-modify-writes of the groups they live in.
//!
//! The log's entries are also held in memory (the *overlay*), and every read
//! of an entry applies them, so a logged acknowledgement counts at once.
//! Folding writes them into the groups and removes the log in one batch;
//! applying an acknowledgement twice gives the same entry, so a fold cut
//! short by a crash is simply done again from the log on the next open.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{StoreError, decode};
use crate::model::{Acked, RecordKey};

/// Above this many logged acknowledgements, they are folded into the groups.
pub const FOLD_AT: usize = 65_536;

pub const LOG_PREFIX: &[u8] = b"l\0";

/// One confirmed record, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedAck {
    pub target: String,
    pub kind: crate::model::RecordKind,
    pub key: String,
    pub acked: Acked,
    /// What was sent, encoded, when it is not the desired projection (a
    /// newer file came meanwhile): the target holds these fields.
    pub fields: Option<Vec<u8>>,
}

impl LoggedAck {
    pub fn record_key(&self) -> RecordKey {
        RecordKey {
            target: self.target.clone(),
            kind: self.kind,
            key: self.key.clone(),
        }
    }
}

/// The acknowledgements logged and not yet folded, latest per record.
#[derive(Debug, Default)]
pub struct Overlay {
    pub acks: HashMap<RecordKey, LoggedAck>,
    /// The sequence number of the next log value.
    pub next_seq: u64,
}

impl Overlay {
    /// Reads the log left by an earlier run, in order.
    pub fn load(tree: &sled::Tree) -> Result<Overlay, StoreError> {
        let mut overlay = Overlay::default();
        for item in tree.scan_prefix(LOG_PREFIX) {
            let (key, bytes) = item?;
            let logged: Vec<LoggedAck> = decode(&key, &bytes)?;
            overlay.next_seq = seq_of(&key).map_or(overlay.next_seq, |seq| seq + 1);
            for ack in logged {
                overlay.acks.insert(ack.record_key(), ack);
            }
        }
        Ok(overlay)
    }

    pub fn log_key(&mut self) -> Vec<u8> {
        let mut key = LOG_PREFIX.to_vec();
        key.extend_from_slice(&self.next_seq.to_be_bytes());
        self.next_seq += 1;
        key
    }
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(LOG_PREFIX.len()..)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}
