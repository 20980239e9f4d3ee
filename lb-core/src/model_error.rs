//! The error every configuration model (services, network) is refused with. A leaf module, so
//! that `net` and `service` can both use it without importing each other.

use std::fmt;

/// A refused model: the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ModelError {}
