//! Sans-IO Kubernetes API machinery shared by Flotilla's apiserver, controllers and CLI.
//!
//! Nothing here opens a socket or a file: it is vocabulary (group/resource names, storage keys) and the pure
//! functions over it, tested by assertion.

pub mod keys;
