//! TAP core: the pure domain of the Tool Authorization Protocol proxy.
//!
//! Nothing in this crate performs network or file I/O; storage is reached only
//! through the [`store::Store`] trait, which `tap-store` implements.
#![warn(missing_docs)]

pub mod approval;
pub mod audit;
pub mod crypto;
pub mod inject;
pub mod model;
pub mod names;
pub mod placeholder;
pub mod policy;
pub mod scrub;
pub mod secret;
pub mod store;
pub mod target;
pub mod text;
pub mod time;
