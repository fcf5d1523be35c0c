//! Integration tests: the real gateway on ephemeral ports in front of real local back-ends.
//! One binary, so the shared back-ends start once.

mod citizen;
mod cns;
mod harness;
mod tls_kit;

mod admin;
mod aggregator;
mod attack_exhaustion;
mod attack_headers;
mod attack_paths;
mod attack_redirects;
mod attack_saml;
mod attack_sessions;
mod attack_smuggling;
mod attack_tenants;
mod catalog;
mod cli;
mod deployment;
mod failures;
mod fast_path;
mod faults;
mod federation;
mod idp_registry;
mod keys_over_time;
mod login;
mod logout;
mod oidc;
mod one_login;
mod process;
mod reload;
mod routing;
mod sentinel;
mod sessions;
mod streaming;
mod tls;
