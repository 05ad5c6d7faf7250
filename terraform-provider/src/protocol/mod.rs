//! Terraform's side of the wire, independent of Conflux: values and their codec, schemas,
//! and diagnostics.

pub mod codec;
pub mod diag;
pub mod schema;
pub mod value;
