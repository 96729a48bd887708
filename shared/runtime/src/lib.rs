//! Tongban runtime: the parts node and hub share that do I/O, kept out of the pure `tongban-shared`.
//!
//! - [`store`]: the sled store of cases, indexes, sync summaries, accounts and identity.
//! - [`replica`]: the sync protocol's [`tongban_shared::sync::Replica`] over that store.

pub mod replica;
pub mod store;
