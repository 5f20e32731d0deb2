//! CommerceML: model types and the streaming reader.
pub mod model;
pub mod reader;
pub use model::*;
pub use reader::{CmlError, CmlReader};
