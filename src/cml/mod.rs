//! CommerceML: model types, the streaming reader and value normalisation.
pub mod model;
pub mod reader;
mod source;
pub mod values;
pub use model::*;
pub use reader::{CmlError, CmlReader, InvalidKind};
