//! The guacr daemon as a library: configuration, listener, connection handling.
//! The binary (`main.rs`) adds the command line, daemonizing and signals.

pub mod admin;
pub mod config;
pub mod connection;
pub mod logging;
pub mod metrics;
pub mod recording;
pub mod server;
pub mod store_cli;
pub mod tls;
#[cfg(feature = "web")]
pub mod web;

pub use config::Config;
pub use server::{Server, ServerState, builtin_protocols};

/// Starts a server on the configuration's address with the built-in protocols.
/// Returns the bound server (see [`Server::local_addrs`]) without serving yet.
pub async fn bind(config: Config) -> anyhow::Result<Server> {
    Server::bind(ServerState::with_factory(config, builtin_protocols)).await
}
