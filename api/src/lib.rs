//! Sans-IO Kubernetes API machinery shared by Flotilla's apiserver, controllers and CLI.
//!
//! Nothing here opens a socket or a file: it is vocabulary (the resource table, storage keys, request paths,
//! selectors, the federation API's types) and the pure functions over it, tested by assertion.

pub mod duration;
pub mod federation;
pub mod keys;
pub mod request;
pub mod resources;
pub mod selector;
