//! Placeholder until the demo seed lands.

use super::provision::ProvisionError;
use super::Directory;
use crate::store::Store;

/// What the demo seed created.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// Demo SIP domain.
    pub domain: String,
    /// (extension, name, password).
    pub accounts: Vec<(String, String, String)>,
}

/// Seeds the demo tenant into an empty database.
pub async fn seed_demo(
    _store: &Store,
    _directory: &Directory,
) -> Result<Option<DemoInfo>, ProvisionError> {
    Ok(None)
}
