//! Identity on the node (contract section 6): tokens and passwords, the in-memory identity
//! every request is checked against, and the link that keeps it in step with the metadata DB.
//!
//! This module decides who a request comes from. What a principal may do is the domain's
//! decision (`conflux_domain::access`); the HTTP side of both is `api::access`. Nothing here
//! touches SQL: the metadata DB is `conflux-metadata`'s.

pub mod cache;
pub mod identity;
pub mod link;
pub mod password;
pub mod token;

pub use identity::{Identity, IdentityCache, Subject};
pub use link::{LinkSettings, MetadataLink};
