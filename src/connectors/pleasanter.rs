//! `pleasanter`: not written yet (issue 4). See TARGETS.md.

use crate::config::TargetConfig;

use super::{PushItem, PushReply};

pub struct Pleasanter {
    batch_size: usize,
}

impl Pleasanter {
    pub fn from_config(target: &TargetConfig) -> Result<Pleasanter, String> {
        let _ = target;
        Err("the pleasanter connector is not written yet".into())
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
