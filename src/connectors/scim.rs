//! `scim`: not written yet (issue 4). See TARGETS.md.

use crate::config::TargetConfig;

use super::{PushItem, PushReply};

pub struct Scim {
    batch_size: usize,
}

impl Scim {
    pub fn from_config(target: &TargetConfig) -> Result<Scim, String> {
        let _ = target;
        Err("the scim connector is not written yet".into())
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
