//! Flotilla's end-to-end suite: real kubectl binaries (and curl for raw requests) against a federation
//! apiserver on each storage backend, a real etcd included.

mod apply;
mod deploy;
mod errors;
mod explain;
mod fidelity;
mod kube_rs;
mod kubectl;
mod protobuf;
mod python;
mod services;
mod updates;

/// Instantiates each scenario `async fn name(Backend)` once per storage backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(flotilla_conformance_tests::Backend::Embedded).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(flotilla_conformance_tests::Backend::Etcd).await
                }
            )*
        }
    };
}
