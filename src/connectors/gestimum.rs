//! `gestimum`: not written yet (issue 4). See TARGETS.md.

use crate::config::TargetConfig;

use super::{PushItem, PushReply};

pub struct Gestimum {
    batch_size: usize,
}

impl Gestimum {
    pub fn from_config(target: &TargetConfig) -> Result<Gestimum, String> {
        let _ = target;
        Err("the gestimum connector is not written yet".into())
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub async fn push(&self, items: &[PushItem]) -> PushReply {
        let _ = items;
        PushReply::default()
    }

    pub async fn check(&self) -> Result<(), String> {
        Ok(())
    }
}
